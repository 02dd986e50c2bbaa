#define _GNU_SOURCE /* memmem */
/* Fuzz the pipeline YAML -> step configuration path (soju data run): any
 * YAML must either build a pipeline or fail with an error, never crash.
 * Steps that would read files named in the input (models, benchmarks) are
 * skipped so the fuzzer does not wander over the disk. */
#include <string.h>

#include "soju/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (memmem(data, size, "model", 5) || memmem(data, size, "bench", 5) || memmem(data, size, "stop_words", 10) ||
        memmem(data, size, "_list", 5) || memmem(data, size, "spam", 4) || memmem(data, size, "boilerplate", 11))
        return 0;
    cJSON *j = NULL;
    soju_err err;
    if (soju_yaml_parse((const char *)data, size, "fuzz.yaml", &j, &err) != SOJU_OK) return 0;
    const cJSON *steps = cJSON_IsObject(j) ? cJSON_GetObjectItem(j, "steps") : j;
    soju_pipeline p;
    if (soju_pipeline_from_json(&p, steps, &err) == SOJU_OK) soju_pipeline_free(&p);
    cJSON_Delete(j);
    return 0;
}
