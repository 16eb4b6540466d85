/* The few Cortex-M4 DSP instructions the engine's fast paths use, from the compiler's ACLE header.
 *
 * ENG_DSP is 1 when the target has them (__ARM_FEATURE_DSP) or when ENG_EMULATE_DSP asks for plain-C
 * stand-ins, which lets native tests run the DSP code paths (their data layout and loop structure) and
 * compare bytes with the portable path. Private to firmware/lib/engine. */
#ifndef ENGINE_SIMD_H
#define ENGINE_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define ENG_DSP 1
/* Sign-extend bytes 0 and 2 of x into two int16 lanes. */
static inline uint32_t eng_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }
/* Sign-extend bytes 1 and 3 of x: SXTB16 with its built-in ROR #8 (ACLE has no rotated form, and GCC
 * emits a separate ROR for __sxtb16(__ror(x, 8)), one instruction per weight word wasted). */
static inline uint32_t eng_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
/* acc + lo(a)*lo(b) + hi(a)*hi(b), int16 lanes. */
static inline int32_t eng_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
/* acc + lo(a)*lo(b) and acc + hi(a)*hi(b). */
static inline int32_t eng_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
static inline int32_t eng_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
/* acc + lo(a)*hi(b). */
static inline int32_t eng_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
/* acc + (a * b + 2^31) >> 32: SMMULR plus a 32-bit addend in the same instruction. */
static inline int32_t eng_smmlar(int32_t a, int32_t b, int32_t acc) {
  int32_t r;
  __asm("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
/* Two consecutive words from a 4-byte-aligned address in one LDRD (GCC never pairs the unaligned-safe
 * loads below). The memory operand tells the compiler which memory the asm reads. "m" lets it fold offsets
 * ([Rn, #imm], the fastest code at -O2) but also allows [Rn, Rm, LSL #n], which LDRD lacks; -Os (the
 * Arduino cores' default) picks that form and the assembler refuses it ("cannot use register index"), so
 * size-optimised builds take "Q" (the address in one register: correct everywhere, about 4 % more
 * instructions at -O2). Any other build that ever meets the same form fails to assemble, never miscompiles. */
typedef struct {
  uint32_t w[2];
} eng_words2_t;
#if defined(__OPTIMIZE_SIZE__)
#define ENG_LDRD_MEM "Q"
#else
#define ENG_LDRD_MEM "m"
#endif
static inline void eng_load2x32(const void *p, uint32_t *a, uint32_t *b) {
  __asm("ldrd %0, %1, %2" : "=r"(*a), "=r"(*b) : ENG_LDRD_MEM(*(const eng_words2_t *)p));
}
/* x saturated to [-128, 127]. */
static inline int32_t eng_ssat8(int32_t x) { return __ssat(x, 8); }
/* [lo(a) | lo(b)] and [hi(a) | hi(b)]: PKHBT / PKHTB (ACLE has neither, and GCC 12 spends 2-3 instructions on
 * the masks and shifts that spell them). */
static inline uint32_t eng_pkhbt(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
static inline uint32_t eng_pkhtb(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
  return r;
}
/* (a * b + 2^31) >> 32: the rounded high word of the 64-bit product (ACLE has no SMMULR intrinsic). */
static inline int32_t eng_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#elif defined(ENG_EMULATE_DSP)
#define ENG_DSP 1
static inline uint32_t eng_pack16(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }
static inline uint32_t eng_sxtb16(uint32_t x) { return eng_pack16((int8_t)(x & 0xFF), (int8_t)((x >> 16) & 0xFF)); }
static inline uint32_t eng_sxtb16_ror8(uint32_t x) { return eng_sxtb16((x >> 8) | (x << 24)); }
static inline int32_t eng_lo16(uint32_t a) { return (int16_t)(a & 0xFFFF); }
static inline int32_t eng_hi16(uint32_t a) { return (int16_t)(a >> 16); }
static inline int32_t eng_smlad(uint32_t a, uint32_t b, int32_t acc) {
  return acc + eng_lo16(a) * eng_lo16(b) + eng_hi16(a) * eng_hi16(b);
}
static inline int32_t eng_smlabb(uint32_t a, uint32_t b, int32_t acc) { return acc + eng_lo16(a) * eng_lo16(b); }
static inline int32_t eng_smlatt(uint32_t a, uint32_t b, int32_t acc) { return acc + eng_hi16(a) * eng_hi16(b); }
static inline int32_t eng_smlabt(uint32_t a, uint32_t b, int32_t acc) { return acc + eng_lo16(a) * eng_hi16(b); }
static inline void eng_load2x32(const void *p, uint32_t *a, uint32_t *b) {
  memcpy(a, p, 4);
  memcpy(b, (const uint8_t *)p + 4, 4);
}
static inline int32_t eng_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
static inline uint32_t eng_pkhbt(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t eng_pkhtb(uint32_t a, uint32_t b) { return (b & 0xFFFF0000u) | (a >> 16); }
static inline int32_t eng_smmulr(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b + (1LL << 31)) >> 32); }
static inline int32_t eng_smmlar(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)(((int64_t)acc * 4294967296LL + (int64_t)a * b + (1LL << 31)) >> 32);
}
#else
#define ENG_DSP 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ENG_NOINLINE __attribute__((noinline))
#define ENG_INLINE inline __attribute__((always_inline))
#else
#define ENG_NOINLINE
#define ENG_INLINE inline
#endif

/* Unroll the next loop fully when its trip count is the constant 9 (GCC; other compilers decide alone). */
#if defined(__GNUC__) && !defined(__clang__)
#define ENG_UNROLL_9 _Pragma("GCC unroll 9")
#else
#define ENG_UNROLL_9
#endif

/* Unaligned-safe 32-bit load/store (a single LDR/STR on Cortex-M4, which allows unaligned access). */
static inline uint32_t eng_load32(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline void eng_store32(void *p, uint32_t v) { memcpy(p, &v, 4); }

#endif /* ENGINE_SIMD_H */
