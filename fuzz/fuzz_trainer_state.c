/* Fuzz the trainer_state.json parser: any bytes must give OK or a clean
 * one-line error; an accepted state must serialize and parse back to the
 * same text. */
#include <stdlib.h>
#include <string.h>

#include "soju/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_trainer_state s;
    soju_err err;
    if (soju_trainer_state_parse(&s, (const char *)data, size, "fuzz.json", &err) != SOJU_OK) {
        if (strchr(err.msg, '\n')) abort();
        return 0;
    }
    cJSON *j = soju_trainer_state_to_json(&s);
    char *text = cJSON_PrintUnformatted(j);
    soju_trainer_state t;
    if (soju_trainer_state_parse(&t, text, strlen(text), "again.json", &err) != SOJU_OK) abort();
    cJSON *k = soju_trainer_state_to_json(&t);
    char *again = cJSON_PrintUnformatted(k);
    if (strcmp(text, again) != 0) abort();
    free(again);
    free(text);
    cJSON_Delete(j);
    cJSON_Delete(k);
    soju_trainer_state_free(&s);
    soju_trainer_state_free(&t);
    return 0;
}
