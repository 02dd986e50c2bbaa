/* Fuzz the YAML → JSON config loader (recipes and data pipelines). */
#include "soju/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = NULL;
    soju_err err;
    if (soju_yaml_parse((const char *)data, size, "fuzz.yaml", &j, &err) == SOJU_OK) {
        char *s = cJSON_PrintUnformatted(j);
        cJSON_free(s);
        cJSON_Delete(j);
    }
    return 0;
}
