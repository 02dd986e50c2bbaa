/* Fuzz the record reader: JSONL, JSONL.zst and text, chosen by the first byte. */
#include "soju/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    soju_reader *r;
    soju_err err;
    soju_record_format fmt = mode == 2 ? SOJU_FMT_TEXT : SOJU_FMT_JSONL;
    if (soju_reader_open_mem(&r, data + 1, size - 1, "fuzz.jsonl", fmt, mode == 1, "text", &err)) return 0;
    soju_record rec;
    size_t total = 0;
    int rc;
    while ((rc = soju_reader_next(r, &rec, &err)) > 0)
        if (rc == SOJU_READ_OK) total += rec.text_len + (rec.text_len ? (unsigned char)rec.text[0] : 0);
    (void)total;
    soju_reader_close(r);
    return 0;
}
