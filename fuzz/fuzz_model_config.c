/* Fuzz the config.json reader: any bytes must give a config or one error
 * line, never a crash; an accepted config must survive a write/read round
 * trip unchanged, and its parameter count must be computable. */
#include <string.h>

#include "soju/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) return 0;
    soju_model_config a, b;
    soju_err err;
    if (soju_config_from_json(&a, j, "fuzz/config.json", &err) == SOJU_OK) {
        (void)soju_config_num_params(&a);
        (void)soju_config_flops_per_token(&a, 1024);
        cJSON *out = soju_config_to_json(&a);
        if (soju_config_from_json(&b, out, "roundtrip", &err) != SOJU_OK || memcmp(&a, &b, sizeof a) != 0)
            __builtin_trap();
        cJSON_Delete(out);
    } else if (strchr(err.msg, '\n') || !strstr(err.msg, "fuzz/config.json")) {
        __builtin_trap(); /* errors are one line naming the file */
    }
    cJSON_Delete(j);
    return 0;
}
