// The x86 intrinsics header for the CPU kernels. GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512
// headers (the `__Y = __Y` idiom of _mm512_undefined_*, GCC bug 105593) wherever such an intrinsic is
// inlined; silencing it for the header's lines keeps -Werror builds clean without hiding warnings in our code.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
