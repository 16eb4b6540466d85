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
/* Sign-extend bytes 1 and 3 of x (the compiler folds the rotate into SXTB16's ROR #8). */
static inline uint32_t eng_sxtb16_ror8(uint32_t x) { return (uint32_t)__sxtb16((int32_t)((x >> 8) | (x << 24))); }
/* acc + lo(a)*lo(b) + hi(a)*hi(b), int16 lanes. */
static inline int32_t eng_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
#elif defined(ENG_EMULATE_DSP)
#define ENG_DSP 1
static inline uint32_t eng_pack16(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }
static inline uint32_t eng_sxtb16(uint32_t x) { return eng_pack16((int8_t)(x & 0xFF), (int8_t)((x >> 16) & 0xFF)); }
static inline uint32_t eng_sxtb16_ror8(uint32_t x) { return eng_sxtb16((x >> 8) | (x << 24)); }
static inline int32_t eng_smlad(uint32_t a, uint32_t b, int32_t acc) {
  return acc + (int32_t)(int16_t)(a & 0xFFFF) * (int16_t)(b & 0xFFFF) + (int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16);
}
#else
#define ENG_DSP 0
#endif

/* Unaligned-safe 32-bit load/store (a single LDR/STR on Cortex-M4, which allows unaligned access). */
static inline uint32_t eng_load32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void eng_store32(void *p, uint32_t v) { memcpy(p, &v, 4); }

#endif /* ENGINE_SIMD_H */
