/* SIMD scans of mailscale's relaxed DKIM body canonicalization (RFC 6376 3.4.4).
 *
 * Included by _core_dkim.pxi (``cdef extern from "_core_dkim_scan.h"``), which
 * declares the functions below that the Cython code calls; the pure-Python twin
 * of what they compute is _core_dkim_py.py (canon_body_relaxed, normalize_line_endings).
 *
 * Part 1: sixteen bytes at a time, masks of the SP, HTAB and CR bytes of a block
 * (SSE2 where the compiler has it, a plain loop elsewhere).
 * Part 2: whole-buffer scans, 64 bytes at a time on 64-bit masks: AVX-512 VBMI2,
 * AVX-512BW or AVX2 when the CPU has it (chosen at run time, GCC/clang on x86),
 * else four SSE2 blocks, else a loop. ms_set_level() selects a lower level (tests).
 */
#ifndef MAILSCALE_CORE_DKIM_SCAN_H
#define MAILSCALE_CORE_DKIM_SCAN_H

#include <Python.h> /* Py_ssize_t */

/* ---- Part 1: 16-byte blocks ------------------------------------------------ */

#if defined(__SSE2__)
#include <emmintrin.h>
static inline void ms_masks16(const unsigned char* p, unsigned int* sp,
                              unsigned int* ht, unsigned int* cr) {
    __m128i v = _mm_loadu_si128((const __m128i*) p);
    *sp = (unsigned int) _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(32)));
    *ht = (unsigned int) _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(9)));
    *cr = (unsigned int) _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(13)));
}
#else
static inline void ms_masks16(const unsigned char* p, unsigned int* sp,
                              unsigned int* ht, unsigned int* cr) {
    unsigned int s = 0, h = 0, c = 0;
    for (int k = 0; k < 16; k++) {
        s |= (unsigned int) (p[k] == 32) << k;
        h |= (unsigned int) (p[k] == 9) << k;
        c |= (unsigned int) (p[k] == 13) << k;
    }
    *sp = s; *ht = h; *cr = c;
}
static inline void ms_crlf16(const unsigned char* p, unsigned int* cr, unsigned int* lf) {
    unsigned int c = 0, l = 0;
    for (int k = 0; k < 16; k++) {
        c |= (unsigned int) (p[k] == 13) << k;
        l |= (unsigned int) (p[k] == 10) << k;
    }
    *cr = c; *lf = l;
}
#endif
#if defined(__SSE2__)
static inline void ms_crlf16(const unsigned char* p, unsigned int* cr, unsigned int* lf) {
    __m128i v = _mm_loadu_si128((const __m128i*) p);
    *cr = (unsigned int) _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(13)));
    *lf = (unsigned int) _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(10)));
}
#endif
static inline int ms_bit_index(unsigned int m) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    int k = 0; while (!(m & 1u)) { m >>= 1; k++; } return k;
#endif
}
static inline int ms_high_bit(unsigned int m) {
#if defined(__GNUC__) || defined(__clang__)
    return 31 - __builtin_clz(m);
#else
    int k = -1; while (m) { m >>= 1; k++; } return k;
#endif
}

/* ---- Part 2: whole-buffer scans, 64-byte blocks ---------------------------- */

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#define MS_EQ16(v, c) ((uint64_t) (unsigned int) _mm_movemask_epi8(_mm_cmpeq_epi8((v), _mm_set1_epi8(c))))
static inline void ms_masks64_base(const unsigned char* p, uint64_t* sp, uint64_t* ht,
                                   uint64_t* cr, uint64_t* lf) {
    __m128i a = _mm_loadu_si128((const __m128i*) p);
    __m128i b = _mm_loadu_si128((const __m128i*) (p + 16));
    __m128i c = _mm_loadu_si128((const __m128i*) (p + 32));
    __m128i d = _mm_loadu_si128((const __m128i*) (p + 48));
    if (sp) *sp = MS_EQ16(a, 32) | MS_EQ16(b, 32) << 16 | MS_EQ16(c, 32) << 32 | MS_EQ16(d, 32) << 48;
    if (ht) *ht = MS_EQ16(a, 9) | MS_EQ16(b, 9) << 16 | MS_EQ16(c, 9) << 32 | MS_EQ16(d, 9) << 48;
    *cr = MS_EQ16(a, 13) | MS_EQ16(b, 13) << 16 | MS_EQ16(c, 13) << 32 | MS_EQ16(d, 13) << 48;
    *lf = MS_EQ16(a, 10) | MS_EQ16(b, 10) << 16 | MS_EQ16(c, 10) << 32 | MS_EQ16(d, 10) << 48;
}
#else
static inline void ms_masks64_base(const unsigned char* p, uint64_t* sp, uint64_t* ht,
                                   uint64_t* cr, uint64_t* lf) {
    uint64_t s = 0, h = 0, c = 0, l = 0;
    for (int k = 0; k < 64; k++) {
        s |= (uint64_t) (p[k] == 32) << k;
        h |= (uint64_t) (p[k] == 9) << k;
        c |= (uint64_t) (p[k] == 13) << k;
        l |= (uint64_t) (p[k] == 10) << k;
    }
    if (sp) *sp = s;
    if (ht) *ht = h;
    *cr = c; *lf = l;
}
#endif

static inline int ms_ctz64(uint64_t m) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(m);
#else
    int k = 0; while (!(m & 1u)) { m >>= 1; k++; } return k;
#endif
}
static inline int ms_high64(uint64_t m) {
#if defined(__GNUC__) || defined(__clang__)
    return 63 - __builtin_clzll(m);
#else
    int k = -1; while (m) { m >>= 1; k++; } return k;
#endif
}

/* True when every CR is followed by LF and every LF preceded by CR: the LF
   mask is the CR mask shifted by one, carried across blocks. */
#define MS_ALL_CRLF_BODY(MASKS)                                              \
    Py_ssize_t i = 0; uint64_t cr, lf, carry = 0;                            \
    for (; i + 64 <= n; i += 64) {                                           \
        MASKS(p + i, NULL, NULL, &cr, &lf);                                  \
        if (lf != ((cr << 1) | carry)) return 0;                             \
        carry = cr >> 63;                                                    \
    }                                                                        \
    for (; i < n; i++) {                                                     \
        if ((p[i] == 10) != (carry == 1)) return 0;                          \
        carry = p[i] == 13;                                                  \
    }                                                                        \
    return carry == 0;

/* Length of the longest run of whole lines at the start of p that relaxed
   body canonicalization leaves as they are (see _relaxed_clean_prefix).
   A bare LF stops the run too, so a run that reaches the end also proves
   that the lines end in CRLF only. p starts a line: the byte before it, if
   any, is LF. */
#define MS_CLEAN_BODY(MASKS)                                                 \
    Py_ssize_t i = 0, line = 0; uint64_t sp, ht, cr, lf, bad, below;         \
    uint64_t cr_in = 0; unsigned char nxt, prev = 10;                        \
    for (; i + 64 <= n; i += 64) {                                           \
        MASKS(p + i, &sp, &ht, &cr, &lf);                                    \
        bad = ht | (sp & ((sp >> 1) | (cr >> 1)))                            \
              | (cr & ~(lf >> 1) & 0x7FFFFFFFFFFFFFFFull)                    \
              | (lf & ~((cr << 1) | cr_in));                                 \
        if ((sp | cr) >> 63) {                                               \
            if (i + 64 >= n) bad |= 1ull << 63;                              \
            else {                                                           \
                nxt = p[i + 64];                                             \
                if (((sp >> 63) && (nxt == 32 || nxt == 13))                 \
                        || ((cr >> 63) && nxt != 10)) bad |= 1ull << 63;     \
            }                                                                \
        }                                                                    \
        if (bad) {                                                           \
            below = cr & ((1ull << ms_ctz64(bad)) - 1);                      \
            if (below) line = i + ms_high64(below) + 2;                      \
            return line;                                                     \
        }                                                                    \
        if (cr) line = i + ms_high64(cr) + 2;                                \
        cr_in = cr >> 63;                                                    \
    }                                                                        \
    if (i) prev = p[i - 1];                                                  \
    for (; i < n; i++) {                                                     \
        unsigned char c = p[i];                                              \
        if (c == 9) return line;                                             \
        if (c == 10 && prev != 13) return line;                              \
        if (c == 32 || c == 13) {                                            \
            if (i + 1 >= n) return line;                                     \
            nxt = p[i + 1];                                                  \
            if (c == 32 && (nxt == 32 || nxt == 13)) return line;            \
            if (c == 13) {                                                   \
                if (nxt != 10) return line;                                  \
                line = i + 2;                                                \
            }                                                                \
        }                                                                    \
        prev = c;                                                            \
    }                                                                        \
    return line;

/* Relaxed body whitespace (RFC 6376 section 3.4.4), 64 bytes at a time: each
   run of SP/HTAB becomes one SP, or nothing when CRLF or the end of the data
   follows it; every other byte is copied as it is. The kept SP of a run is
   its last byte (made SP), so a run crossing blocks needs only the next two
   bytes. dst has room for n + 64 bytes (a block is stored whole); the output
   never outgrows the input read so far. Returns the output length; with
   crlf, *crlf tells whether every CR is followed by LF and every LF preceded
   by CR (the same masks prove it on the way). */
#define MS_RELAXED_BODY(MASKS, EMIT)                                           \
    Py_ssize_t i = 0, o = 0, m; uint64_t sp, ht, cr, lf, ws, wsn, crn, lfn2;  \
    uint64_t endn, run_end, keep, valid, eol_bad = 0, carry = 0;              \
    unsigned char b64, b65;                                                   \
    unsigned char tail[64]; const unsigned char* blk;                         \
    for (; i < n; i += 64) {                                                  \
        m = n - i;                                                            \
        if (m >= 64) { blk = src + i; valid = ~0ull; }                        \
        else {                                                                \
            memset(tail, 0, 64); memcpy(tail, src + i, (size_t) m);           \
            blk = tail; valid = (1ull << m) - 1;                              \
        }                                                                     \
        MASKS(blk, &sp, &ht, &cr, &lf);                                       \
        ws = sp | ht;                                                         \
        eol_bad |= lf ^ ((cr << 1) | carry);                                  \
        carry = cr >> 63;                                                     \
        b64 = m > 64 ? src[i + 64] : 0;                                       \
        b65 = m > 65 ? src[i + 65] : 0;                                       \
        wsn = (ws >> 1) | ((uint64_t) (b64 == 32 || b64 == 9) << 63);         \
        crn = (cr >> 1) | ((uint64_t) (b64 == 13) << 63);                     \
        lfn2 = (lf >> 2) | ((uint64_t) (b64 == 10) << 62)                     \
               | ((uint64_t) (b65 == 10) << 63);                              \
        endn = m <= 64 ? 1ull << (m - 1) : 0;                                 \
        run_end = ws & ~wsn;                                                  \
        keep = (~ws | (run_end & ~((crn & lfn2) | endn))) & valid;            \
        if (keep == ~0ull && !ht) { memcpy(dst + o, blk, 64); o += 64; }      \
        else { EMIT }                                                         \
    }                                                                         \
    if (crlf) *crlf = !(eol_bad | carry);                                     \
    return o;

/* The kept spans one by one (HTAB made SP): the portable path. */
#define MS_EMIT_SPANS                                                         \
    unsigned char fixed[64]; uint64_t k = keep, h = ht & keep; int s, len;    \
    if (h) {                                                                  \
        memcpy(fixed, blk, 64);                                               \
        while (h) { fixed[ms_ctz64(h)] = 32; h &= h - 1; }                    \
        blk = fixed;                                                          \
    }                                                                         \
    while (k) {                                                               \
        s = ms_ctz64(k);                                                      \
        len = (~(k >> s)) ? ms_ctz64(~(k >> s)) : 64 - s;                     \
        memcpy(dst + o, blk + s, (size_t) len);                               \
        o += len;                                                             \
        k = (s + len >= 64) ? 0 : k & ~0ull << (s + len);                     \
    }

static Py_ssize_t ms_relaxed_base(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* crlf) {
    MS_RELAXED_BODY(ms_masks64_base, MS_EMIT_SPANS)
}
static int ms_all_crlf_base(const unsigned char* p, Py_ssize_t n) { MS_ALL_CRLF_BODY(ms_masks64_base) }
static Py_ssize_t ms_clean_base(const unsigned char* p, Py_ssize_t n) { MS_CLEAN_BODY(ms_masks64_base) }

/* Which scans run: 0 the portable ones, 1 AVX2, 2 AVX-512BW, 3 AVX-512BW with
   VBMI2 (compress for relaxed bodies); the best the
   CPU has unless ms_set_level chose a lower one (tests run each path). */
static int ms_level = -1;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define MS_EQ32(v, c) ((uint64_t) (unsigned int) _mm256_movemask_epi8(_mm256_cmpeq_epi8((v), _mm256_set1_epi8(c))))
__attribute__((target("avx2")))
static inline void ms_masks64_avx2(const unsigned char* p, uint64_t* sp, uint64_t* ht,
                                   uint64_t* cr, uint64_t* lf) {
    __m256i a = _mm256_loadu_si256((const __m256i*) p);
    __m256i b = _mm256_loadu_si256((const __m256i*) (p + 32));
    if (sp) *sp = MS_EQ32(a, 32) | MS_EQ32(b, 32) << 32;
    if (ht) *ht = MS_EQ32(a, 9) | MS_EQ32(b, 9) << 32;
    *cr = MS_EQ32(a, 13) | MS_EQ32(b, 13) << 32;
    *lf = MS_EQ32(a, 10) | MS_EQ32(b, 10) << 32;
}
__attribute__((target("avx2")))
static int ms_all_crlf_avx2(const unsigned char* p, Py_ssize_t n) { MS_ALL_CRLF_BODY(ms_masks64_avx2) }
__attribute__((target("avx2")))
static Py_ssize_t ms_clean_avx2(const unsigned char* p, Py_ssize_t n) { MS_CLEAN_BODY(ms_masks64_avx2) }
/* AVX-512BW compares give the 64-bit masks directly. */
__attribute__((target("avx512bw")))
static inline void ms_masks64_avx512(const unsigned char* p, uint64_t* sp, uint64_t* ht,
                                     uint64_t* cr, uint64_t* lf) {
    __m512i v = _mm512_loadu_si512((const void*) p);
    if (sp) *sp = (uint64_t) _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(32));
    if (ht) *ht = (uint64_t) _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(9));
    *cr = (uint64_t) _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(13));
    *lf = (uint64_t) _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(10));
}
__attribute__((target("avx512bw")))
static int ms_all_crlf_avx512(const unsigned char* p, Py_ssize_t n) { MS_ALL_CRLF_BODY(ms_masks64_avx512) }
__attribute__((target("avx512bw")))
static Py_ssize_t ms_clean_avx512(const unsigned char* p, Py_ssize_t n) { MS_CLEAN_BODY(ms_masks64_avx512) }
/* AVX2 has no byte compress: each 8-byte group of a block is packed by one
   SSSE3 shuffle whose control comes from a table indexed by the group's 8 keep
   bits, and stored as 8 bytes (the bytes past the kept ones are overwritten by
   the next group; dst has room for a whole block). HTAB is made SP first by one
   blend per 16 bytes (an HTAB that is not kept is dropped anyway). */
static unsigned char ms_pack_table[256][8];
static void ms_pack_init(void) {
    for (int m = 0; m < 256; m++) {
        int o = 0;
        for (int b = 0; b < 8; b++)
            if (m & (1 << b)) ms_pack_table[m][o++] = (unsigned char) b;
        while (o < 8) ms_pack_table[m][o++] = 0x80;
    }
}
#define MS_EMIT_PACK8                                                         \
    for (int g = 0; g < 64; g += 16) {                                        \
        __m128i v = _mm_loadu_si128((const __m128i*) (blk + g));              \
        v = _mm_blendv_epi8(v, _mm_set1_epi8(32),                             \
                            _mm_cmpeq_epi8(v, _mm_set1_epi8(9)));             \
        unsigned int lo = (unsigned int) (keep >> g) & 0xFFu;                 \
        unsigned int hi = (unsigned int) (keep >> (g + 8)) & 0xFFu;           \
        __m128i c = _mm_loadl_epi64((const __m128i*) ms_pack_table[lo]);      \
        _mm_storel_epi64((__m128i*) (dst + o), _mm_shuffle_epi8(v, c));       \
        o += __builtin_popcount(lo);                                          \
        c = _mm_loadl_epi64((const __m128i*) ms_pack_table[hi]);              \
        _mm_storel_epi64((__m128i*) (dst + o),                                \
                         _mm_shuffle_epi8(_mm_srli_si128(v, 8), c));          \
        o += __builtin_popcount(hi);                                          \
    }
__attribute__((target("avx2,popcnt")))
static Py_ssize_t ms_relaxed_avx2(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* crlf) {
    MS_RELAXED_BODY(ms_masks64_avx2, MS_EMIT_PACK8)
}
__attribute__((target("avx512bw,popcnt")))
static Py_ssize_t ms_relaxed_avx512(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* crlf) {
    MS_RELAXED_BODY(ms_masks64_avx512, MS_EMIT_PACK8)
}
/* AVX-512 VBMI2: the kept bytes of a block packed by one compress, HTAB made
   SP by one blend, stored whole. */
#define MS_EMIT_COMPRESS                                                      \
    __m512i v = _mm512_loadu_si512((const void*) blk);                        \
    v = _mm512_mask_blend_epi8((__mmask64) ht, v, _mm512_set1_epi8(32));      \
    _mm512_storeu_si512((void*) (dst + o),                                    \
                        _mm512_maskz_compress_epi8((__mmask64) keep, v));     \
    o += __builtin_popcountll(keep);
__attribute__((target("avx512bw,avx512vbmi2,popcnt")))
static Py_ssize_t ms_relaxed_vbmi2(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* crlf) {
    MS_RELAXED_BODY(ms_masks64_avx512, MS_EMIT_COMPRESS)
}
static int ms_max_level(void) {
    static int best = -1;
    if (best < 0) {
        ms_pack_init();
        __builtin_cpu_init();
        best = __builtin_cpu_supports("avx512bw")
            ? (__builtin_cpu_supports("avx512vbmi2") ? 3 : 2)
            : __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return best;
}
static inline int ms_get_level(void) {
    if (ms_level < 0) ms_level = ms_max_level();
    return ms_level;
}
static int ms_all_crlf(const unsigned char* p, Py_ssize_t n) {
    switch (ms_get_level()) {
        case 3: case 2: return ms_all_crlf_avx512(p, n);
        case 1: return ms_all_crlf_avx2(p, n);
        default: return ms_all_crlf_base(p, n);
    }
}
static Py_ssize_t ms_clean_prefix(const unsigned char* p, Py_ssize_t n) {
    switch (ms_get_level()) {
        case 3: case 2: return ms_clean_avx512(p, n);
        case 1: return ms_clean_avx2(p, n);
        default: return ms_clean_base(p, n);
    }
}
static Py_ssize_t ms_relaxed(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* crlf) {
    switch (ms_get_level()) {
        case 3: return ms_relaxed_vbmi2(src, n, dst, crlf);
        case 2: return ms_relaxed_avx512(src, n, dst, crlf);
        case 1: return ms_relaxed_avx2(src, n, dst, crlf);
        default: return ms_relaxed_base(src, n, dst, crlf);
    }
}
#else
static int ms_max_level(void) { return 0; }
static inline int ms_get_level(void) { return 0; }
static int ms_all_crlf(const unsigned char* p, Py_ssize_t n) { return ms_all_crlf_base(p, n); }
static Py_ssize_t ms_clean_prefix(const unsigned char* p, Py_ssize_t n) { return ms_clean_base(p, n); }
static Py_ssize_t ms_relaxed(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* crlf) { return ms_relaxed_base(src, n, dst, crlf); }
#endif
static int ms_set_level(int level) {
    if (level < 0 || level > ms_max_level()) return -1;
    ms_level = level;
    return 0;
}

#endif /* MAILSCALE_CORE_DKIM_SCAN_H */
