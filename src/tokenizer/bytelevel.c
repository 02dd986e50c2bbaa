/* GPT-2's byte-to-unicode alphabet. Byte-level vocabularies spell every byte
 * as a printable character so merges files stay readable: the printable
 * bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and the other 68
 * bytes (controls, space, DEL, NBSP, soft hyphen...) take U+0100.. in order,
 * so the space byte is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A). */
#include "internal.h"

static int is_self(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

/* The 68 other bytes in order: 0..32 → U+0100.., 127..160 → U+0121.., 173 → U+0143. */
static uint32_t byte_char(int b) {
    if (is_self(b)) return (uint32_t)b;
    if (b <= 32) return 256u + (uint32_t)b;
    if (b <= 160) return 256u + 33u + (uint32_t)(b - 127);
    return 256u + 67u;
}

static int char_byte(uint32_t c) {
    if (c < 256) return is_self((int)c) ? (int)c : -1;
    if (c < 256 + 33) return (int)(c - 256);
    if (c < 256 + 67) return (int)(c - 256 - 33 + 127);
    if (c == 256 + 67) return 173;
    return -1;
}

void tok_bytes_to_unicode(const uint8_t *bytes, size_t n, soju_buf *out) {
    soju_buf_clear(out);
    for (size_t i = 0; i < n; i++) {
        uint8_t u[4];
        int k = soju_utf8_encode(byte_char(bytes[i]), u);
        soju_buf_append(out, u, (size_t)k);
    }
}

int tok_unicode_to_bytes(const char *s, size_t n, soju_buf *out) {
    soju_buf_clear(out);
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        int k = soju_utf8_decode((const uint8_t *)s + i, n - i, &c);
        if (!k) return -1;
        i += (size_t)k;
        int b = char_byte(c);
        if (b < 0) return -1;
        char ch = (char)b;
        soju_buf_append(out, &ch, 1);
    }
    return 0;
}
