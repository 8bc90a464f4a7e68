/*
 * views_v2.c -- an independent implementation of the view sampler `lplabel-views-v2`
 * (spec/FORMAT.md §11.3), written from the specification text alone.
 *
 * Purpose: prove that §11.3 is complete. It shares no code with lplabel (lplabel's sampler
 * is vectorised numpy; this is plain scalar C99). tests/test_views_v2_c.py compiles it and
 * checks it against spec/views-v2-vectors.json and against lplabel on random policies.
 *
 * Build:  cc -std=c99 -O2 -ffp-contract=off -o views_v2 views_v2.c -lm
 * (§11.3 "Arithmetic": every binary64 operation rounded once, no FMA, no x87, no fast-math.)
 * Only libm's sqrt is used (IEEE correctly rounded); roundeven and floor are done by hand.
 *
 * Command interface: one command per line on stdin, whitespace-separated tokens; one answer
 * line per command on stdout (an error gives a line starting with "error").
 * Integers are decimal; real inputs are anything strtod reads (decimal as in the JSON header,
 * C99 hex floats such as Python's float.hex(), "nan"); binary64 outputs are 16 hex digits of
 * their bits, binary32 outputs their bits as a decimal u32.
 *
 *   philox C0 C1 C2 C3 K0 K1          -> r0 r1 r2 r3
 *   unit R0 R1                        -> bits of unit(r0, r1)
 *   bounded N INDEX STEP PURPOSE SEED EPOCH -> value   (N in 1..2^32; ORDER uses the given STEP
 *                                                       as c1, as the vectors state it)
 *   ratio LO HI                       -> T[0] .. T[31] (bits)
 *   order SEED EPOCH N                -> the N image ids of perm(N, ORDER)
 *   cutbox LAMBDA S CY CX             -> row0 col0 row1 col1
 *   views SEED EPOCH STEP S SLO SHI RLO RHI FLIP_P MIX LAMBDA B H_0 W_0 .. H_{B-1} W_{B-1}
 *         MIX: 0 none, 1 cutmix, 2 mixup. LAMBDA is read only for cutmix (give nan otherwise).
 *         -> B, then per view: top left h w fallback flip partner crop0 crop1 crop2 crop3
 *            (crop as the binary32 bits, a decimal u32), then row0 col0 row1 col1 cy cx (cy cx = -1 unless cutmix)
 *   step SEED EPOCH STEP NIMG BATCH DROP_LAST S SLO SHI RLO RHI FLIP_P MIX LAMBDA
 *        H_0 W_0 .. H_{NIMG-1} W_{NIMG-1}
 *         -> B, then the B image ids, then the same fields as `views`
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>

/* GCC ignores this pragma (hence -ffp-contract=off); clang and others honour it. */
#if !defined(__GNUC__) || defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "lplabel-views-v2 needs binary64 evaluation without wider intermediates (FLT_EVAL_METHOD 0)"
#endif

/* purposes (§11.3.1, table "Blocks") */
enum { ORDER = 0, CROP = 1, TOP = 2, LEFT = 3, FLIP = 4, LAMBDA = 5, PERM = 6, CUT_ROW = 7,
       CUT_COL = 8 };

/* ---------------------------------------------------------------- Philox4x32-10 (§11.3.1) */

static void philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                   uint32_t r[4])
{
    int round;
    for (round = 0; round < 10; round++) {
        uint64_t p0, p1;
        uint32_t n0, n1, n2, n3;
        if (round > 0) {
            k0 += 0x9E3779B9u; /* u32 arithmetic wraps modulo 2^32 */
            k1 += 0xBB67AE85u;
        }
        p0 = (uint64_t)0xD2511F53u * c0;
        p1 = (uint64_t)0xCD9E8D57u * c2;
        n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        n1 = (uint32_t)(p1 & 0xFFFFFFFFu);
        n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        n3 = (uint32_t)(p0 & 0xFFFFFFFFu);
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    }
    r[0] = c0; r[1] = c1; r[2] = c2; r[3] = c3;
}

/* The addressing of one step: key (seed, epoch), counter word c1 = step. */
typedef struct { uint32_t seed, epoch, step; } Key;

static void blk(const Key *key, uint32_t index, uint32_t purpose, uint32_t j, uint32_t r[4])
{
    philox(index, key->step, purpose, j, key->seed, key->epoch, r);
}

/* ------------------------------------------------------------------------- doubles */

static double unit(uint32_t r0, uint32_t r1)
{
    uint64_t m = ((uint64_t)r0 << 21) | (uint64_t)(r1 >> 11); /* 53 bits: exact in binary64 */
    return (double)m * 0x1p-53;
}

/* roundeven for any binary64: for |x| < 2^52, (|x| + 2^52) - 2^52 rounds to the nearest
 * integer, ties to even, in the default rounding mode; larger magnitudes, inf and NaN are
 * returned unchanged. */
static double roundeven_(double x)
{
    double ax = x < 0 ? -x : x;
    double y;
    if (!(ax < 0x1p52)) return x;
    y = (ax + 0x1p52) - 0x1p52;
    return x < 0 ? -y : y;
}

/* floor of a non-negative finite binary64 below 2^63 */
static int64_t floor_nonneg(double x)
{
    return (int64_t)x; /* C truncates toward zero: the floor for x >= 0 */
}

static uint64_t bits64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static uint32_t bits32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }

/* ---------------------------------------------------------------- bounded integers */

/* Uniform on [0, n), 1 <= n <= 2^32, by rejection over the words of blocks 0, 1, ... */
static uint64_t bounded(const Key *key, uint64_t n, uint32_t index, uint32_t purpose)
{
    const uint64_t two32 = (uint64_t)1 << 32;
    uint64_t lim = two32 - (two32 % n);
    uint32_t j, r[4];
    int t;
    for (j = 0;; j++) {
        blk(key, index, purpose, j, r);
        for (t = 0; t < 4; t++)
            if ((uint64_t)r[t] < lim) return (uint64_t)r[t] % n;
        if (j == 0xFFFFFFFFu) break; /* unreachable in practice (prob < 2^-(2^34)) */
    }
    fprintf(stderr, "bounded: stream exhausted\n");
    exit(3);
}

/* Fisher-Yates from the top: a must hold n elements. */
static void perm(const Key *key, uint64_t n, uint32_t purpose, int64_t *a)
{
    uint64_t i;
    for (i = 0; i < n; i++) a[i] = (int64_t)i;
    for (i = n; i-- > 1;) {
        uint64_t j = bounded(key, i + 1, (uint32_t)i, purpose);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- policy and crop */

typedef struct {
    int64_t S;
    double scale_lo, scale_hi, ratio_lo, ratio_hi, flip_p;
    int mix; /* 0 none, 1 cutmix, 2 mixup */
    double d, T[32];
} Policy;

static void ratio_table(double ratio_lo, double ratio_hi, double T[32])
{
    double q = ratio_hi / ratio_lo;
    int k;
    T[0] = sqrt(q);
    for (k = 1; k < 32; k++) T[k] = sqrt(T[k - 1]);
}

static void policy_init(Policy *p)
{
    p->d = p->scale_hi - p->scale_lo;
    ratio_table(p->ratio_lo, p->ratio_hi, p->T);
}

typedef struct {
    int64_t top, left, h, w;
    int fallback, flip;
    int64_t partner;
    uint32_t crop[4];
} View;

static void crop_view(const Key *key, const Policy *p, uint32_t i, int64_t H, int64_t W, View *v)
{
    double area = (double)((uint64_t)H * (uint64_t)W);
    double fH = (double)H, fW = (double)W;
    uint32_t r[4];
    int j, k, accepted = 0;
    int64_t h = 0, w = 0, top, left;

    for (j = 0; j < 10 && !accepted; j++) {
        double u, target, a, wf, hf;
        blk(key, i, CROP, (uint32_t)j, r);
        u = unit(r[0], r[1]);
        target = area * (p->scale_lo + p->d * u);
        a = p->ratio_lo;
        for (k = 0; k < 32; k++)
            if ((r[2] >> (31 - k)) & 1u) a = a * p->T[k];
        wf = roundeven_(sqrt(target * a));
        hf = roundeven_(sqrt(target / a));
        if (1.0 <= wf && wf <= fW && 1.0 <= hf && hf <= fH) {
            accepted = 1;
            w = (int64_t)wf;
            h = (int64_t)hf;
        }
    }
    if (accepted) {
        v->fallback = 0;
        top = (int64_t)bounded(key, (uint64_t)(H - h + 1), i, TOP);
        left = (int64_t)bounded(key, (uint64_t)(W - w + 1), i, LEFT);
    } else {
        double rr = fW / fH, x;
        v->fallback = 1;
        if (rr < p->ratio_lo) {
            w = W;
            x = roundeven_(fW / p->ratio_lo);
            x = x > 1.0 ? x : 1.0;       /* max(x, 1) */
            x = x < fH ? x : fH;         /* min(x, H) */
            h = (int64_t)x;
        } else if (rr > p->ratio_hi) {
            h = H;
            x = roundeven_(fH * p->ratio_hi);
            x = x > 1.0 ? x : 1.0;
            x = x < fW ? x : fW;
            w = (int64_t)x;
        } else {
            h = H;
            w = W;
        }
        top = (H - h) / 2;
        left = (W - w) / 2;
    }
    v->top = top; v->left = left; v->h = h; v->w = w;
    v->crop[0] = bits32((float)((double)top / fH));
    v->crop[1] = bits32((float)((double)left / fW));
    v->crop[2] = bits32((float)((double)h / fH));
    v->crop[3] = bits32((float)((double)w / fW));
}

static int64_t clamp_s(int64_t v, int64_t S) { return v < 0 ? 0 : (v > S ? S : v); }

static void cutmix_box(double lam, int64_t S, int64_t cy, int64_t cx, int64_t box[4])
{
    int64_t cut = floor_nonneg((double)S * sqrt(1.0 - lam));
    int64_t half = cut / 2;
    box[0] = clamp_s(cy - half, S);
    box[1] = clamp_s(cx - half, S);
    box[2] = clamp_s(cy + half, S);
    box[3] = clamp_s(cx + half, S);
}

/* Everything §11.3.3-§11.3.5 draws for one step of b views. Returns 0, or -1 with a message. */
static int sample_step(const Key *key, const Policy *p, double lam, int64_t b, const int64_t *H,
                       const int64_t *W, View *views, int64_t box[4], int64_t *cy, int64_t *cx,
                       const char **err)
{
    int64_t i;
    for (i = 0; i < b; i++) {
        crop_view(key, p, (uint32_t)i, H[i], W[i], &views[i]);
        {
            uint32_t r[4];
            blk(key, (uint32_t)i, FLIP, 0, r);
            views[i].flip = unit(r[0], r[1]) < p->flip_p;
        }
        views[i].partner = -1;
    }
    box[0] = box[1] = box[2] = box[3] = 0;
    *cy = *cx = -1;
    if (p->mix != 0) {
        int64_t *a;
        if (b < 1) { *err = "a mixed step needs b >= 1"; return -1; }
        a = malloc((size_t)b * sizeof *a);
        if (!a) { *err = "out of memory"; return -1; }
        perm(key, (uint64_t)b, PERM, a);
        for (i = 0; i < b; i++) views[i].partner = a[i];
        free(a);
        if (p->mix == 1) {
            if (!(lam >= 0.0 && lam <= 1.0)) { *err = "cutmix lambda must be in [0, 1]"; return -1; }
            *cy = (int64_t)bounded(key, (uint64_t)p->S, 0, CUT_ROW);
            *cx = (int64_t)bounded(key, (uint64_t)p->S, 0, CUT_COL);
            cutmix_box(lam, p->S, *cy, *cx, box);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- command interface */

static int next_token(char *buf, size_t cap)
{
    int c;
    size_t n = 0;
    do { c = getchar(); } while (c == ' ' || c == '\t' || c == '\r');
    if (c == EOF) return -1;
    if (c == '\n') { ungetc(c, stdin); return 0; } /* end of line, left for skip_line */
    while (c != EOF && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        if (n + 1 < cap) buf[n++] = (char)c;
        c = getchar();
    }
    buf[n] = 0;
    if (c == '\n') ungetc(c, stdin);
    return 1;
}

static int bad; /* set when a token is missing or malformed */
static char tok[256];

static uint64_t get_u(uint64_t max)
{
    char *end;
    unsigned long long v;
    if (next_token(tok, sizeof tok) != 1) { bad = 1; return 0; }
    v = strtoull(tok, &end, 10);
    if (*end || tok[0] == '-' || v > max) bad = 1;
    return (uint64_t)v;
}

static double get_d(void)
{
    char *end;
    double v;
    if (next_token(tok, sizeof tok) != 1) { bad = 1; return 0; }
    v = strtod(tok, &end);
    if (*end) bad = 1;
    return v;
}

static void skip_line(void)
{
    int c;
    do { c = getchar(); } while (c != '\n' && c != EOF);
}

static const uint64_t U32 = 0xFFFFFFFFu;
static const uint64_t SIZE_MAX_ = ((uint64_t)1 << 31) - 1;

static int read_policy(Policy *p)
{
    p->S = (int64_t)get_u(32767);
    p->scale_lo = get_d(); p->scale_hi = get_d();
    p->ratio_lo = get_d(); p->ratio_hi = get_d();
    p->flip_p = get_d();
    p->mix = (int)get_u(2);
    if (bad) return -1;
    if (p->S < 1 || !(p->scale_lo > 0 && p->scale_lo <= p->scale_hi && p->scale_hi <= 1) ||
        !(p->ratio_lo > 0 && p->ratio_lo <= p->ratio_hi && p->ratio_hi < HUGE_VAL) ||
        !(p->flip_p >= 0 && p->flip_p <= 1))
        return -1;
    policy_init(p);
    return 0;
}

static void print_views(int64_t b, const View *v, const int64_t box[4], int64_t cy, int64_t cx)
{
    int64_t i;
    for (i = 0; i < b; i++)
        printf(" %lld %lld %lld %lld %d %d %lld %lu %lu %lu %lu", (long long)v[i].top,
               (long long)v[i].left, (long long)v[i].h, (long long)v[i].w, v[i].fallback,
               v[i].flip, (long long)v[i].partner, (unsigned long)v[i].crop[0],
               (unsigned long)v[i].crop[1], (unsigned long)v[i].crop[2], (unsigned long)v[i].crop[3]);
    printf(" %lld %lld %lld %lld %lld %lld", (long long)box[0], (long long)box[1],
           (long long)box[2], (long long)box[3], (long long)cy, (long long)cx);
}

static void run_command(const char *cmd)
{
    bad = 0;
    if (!strcmp(cmd, "philox")) {
        uint32_t c[4], k[2], r[4];
        int t;
        for (t = 0; t < 4; t++) c[t] = (uint32_t)get_u(U32);
        for (t = 0; t < 2; t++) k[t] = (uint32_t)get_u(U32);
        if (bad) goto fail;
        philox(c[0], c[1], c[2], c[3], k[0], k[1], r);
        printf("%u %u %u %u\n", (unsigned)r[0], (unsigned)r[1], (unsigned)r[2], (unsigned)r[3]);
    } else if (!strcmp(cmd, "unit")) {
        uint32_t r0 = (uint32_t)get_u(U32), r1 = (uint32_t)get_u(U32);
        if (bad) goto fail;
        printf("%016llx\n", (unsigned long long)bits64(unit(r0, r1)));
    } else if (!strcmp(cmd, "bounded")) {
        uint64_t n = get_u((uint64_t)1 << 32);
        Key key;
        uint32_t index = (uint32_t)get_u(U32), purpose;
        key.step = (uint32_t)get_u(U32);
        purpose = (uint32_t)get_u(U32);
        key.seed = (uint32_t)get_u(U32);
        key.epoch = (uint32_t)get_u(U32);
        if (bad || n < 1) goto fail;
        printf("%llu\n", (unsigned long long)bounded(&key, n, index, purpose));
    } else if (!strcmp(cmd, "ratio")) {
        double lo = get_d(), hi = get_d(), T[32];
        int k;
        if (bad || !(lo > 0 && lo <= hi)) goto fail;
        ratio_table(lo, hi, T);
        for (k = 0; k < 32; k++) printf(k ? " %016llx" : "%016llx", (unsigned long long)bits64(T[k]));
        printf("\n");
    } else if (!strcmp(cmd, "order")) {
        Key key;
        uint64_t n, i;
        int64_t *a;
        key.seed = (uint32_t)get_u(U32);
        key.epoch = (uint32_t)get_u(U32);
        key.step = 0; /* ORDER: counter word c1 = 0 whatever the step */
        n = get_u((uint64_t)1 << 32);
        if (bad) goto fail;
        a = malloc((size_t)(n ? n : 1) * sizeof *a);
        if (!a) goto fail;
        perm(&key, n, ORDER, a);
        for (i = 0; i < n; i++) printf(i ? " %lld" : "%lld", (long long)a[i]);
        printf("\n");
        free(a);
    } else if (!strcmp(cmd, "cutbox")) {
        double lam = get_d();
        int64_t S = (int64_t)get_u(32767), cy, cx, box[4];
        cy = (int64_t)get_u(32766);
        cx = (int64_t)get_u(32766);
        if (bad || S < 1 || !(lam >= 0 && lam <= 1)) goto fail;
        cutmix_box(lam, S, cy, cx, box);
        printf("%lld %lld %lld %lld\n", (long long)box[0], (long long)box[1], (long long)box[2],
               (long long)box[3]);
    } else if (!strcmp(cmd, "views") || !strcmp(cmd, "step")) {
        int is_step = !strcmp(cmd, "step");
        Key key;
        Policy p;
        double lam;
        uint64_t nimg = 0, batch = 0, steps, first;
        int drop_last = 0;
        int64_t b, i, *H = NULL, *W = NULL, *ids = NULL, box[4], cy, cx;
        View *v = NULL;
        const char *err = "bad arguments";
        key.seed = (uint32_t)get_u(U32);
        key.epoch = (uint32_t)get_u(U32);
        key.step = (uint32_t)get_u(U32);
        if (is_step) {
            nimg = get_u((uint64_t)1 << 32);
            batch = get_u((uint64_t)1 << 32);
            drop_last = (int)get_u(1);
        }
        if (bad || read_policy(&p)) goto fail;
        lam = get_d();
        if (!is_step) nimg = get_u((uint64_t)1 << 32);
        if (bad) goto fail;
        H = malloc((size_t)(nimg ? nimg : 1) * sizeof *H);
        W = malloc((size_t)(nimg ? nimg : 1) * sizeof *W);
        if (!H || !W) goto fail_free;
        for (i = 0; i < (int64_t)nimg; i++) {
            H[i] = (int64_t)get_u(SIZE_MAX_);
            W[i] = (int64_t)get_u(SIZE_MAX_);
            if (bad || H[i] < 1 || W[i] < 1) goto fail_free;
        }
        if (is_step) {
            /* §11.3.2: order_e = perm(N, ORDER) (c1 = 0); step s holds order_e[s.B .. ] */
            Key okey = key;
            int64_t *order, *hs, *ws;
            if (batch < 1) goto fail_free;
            steps = drop_last ? nimg / batch : (nimg + batch - 1) / batch;
            if ((uint64_t)key.step >= steps) { err = "step out of range"; goto fail_free; }
            first = (uint64_t)key.step * batch;
            b = (int64_t)((nimg - first) < batch ? (nimg - first) : batch);
            order = malloc((size_t)(nimg ? nimg : 1) * sizeof *order);
            ids = malloc((size_t)b * sizeof *ids);
            hs = malloc((size_t)b * sizeof *hs);
            ws = malloc((size_t)b * sizeof *ws);
            if (!order || !ids || !hs || !ws) goto fail_free;
            okey.step = 0;
            perm(&okey, nimg, ORDER, order);
            for (i = 0; i < b; i++) {
                ids[i] = order[first + (uint64_t)i];
                hs[i] = H[ids[i]];
                ws[i] = W[ids[i]];
            }
            free(order); free(H); free(W);
            H = hs; W = ws;
        } else {
            b = (int64_t)nimg;
        }
        v = malloc((size_t)(b ? b : 1) * sizeof *v);
        if (!v) goto fail_free;
        if (sample_step(&key, &p, lam, b, H, W, v, box, &cy, &cx, &err)) goto fail_free;
        printf("%lld", (long long)b);
        if (is_step)
            for (i = 0; i < b; i++) printf(" %lld", (long long)ids[i]);
        print_views(b, v, box, cy, cx);
        printf("\n");
        free(H); free(W); free(ids); free(v);
        return;
    fail_free:
        free(H); free(W); free(ids); free(v);
        skip_line();
        printf("error %s: %s\n", cmd, err);
        return;
    } else {
        skip_line();
        printf("error unknown command %s\n", cmd);
        return;
    }
    skip_line();
    return;
fail:
    skip_line();
    printf("error %s: bad arguments\n", cmd);
}

int main(void)
{
    char cmd[64];
    for (;;) {
        int t = next_token(cmd, sizeof cmd);
        if (t < 0) break;
        if (t == 0) { getchar(); continue; } /* blank line */
        run_command(cmd);
    }
    return 0;
}
