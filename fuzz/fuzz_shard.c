/* Fuzz the token-shard header parser: any bytes must give OK or a clean error,
 * and an accepted shard's token reads must stay inside the buffer. */
#include "soju/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_shard_info info;
    soju_err err;
    if (soju_shard_parse_header(data, size, "fuzz.bin", &info, &err) == SOJU_OK) {
        soju_shard s = {.info = info, .tokens = data + SOJU_SHARD_HEADER};
        uint64_t sum = 0;
        for (uint64_t i = 0; i < info.n_tokens; i++) sum += soju_shard_token(&s, i);
        (void)sum;
    }
    return 0;
}
