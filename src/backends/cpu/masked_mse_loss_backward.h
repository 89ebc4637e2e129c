// The AutoRound block loss (AUTOROUND.md §1, "masked_mse_mean" of the issue-3 contract), forward and backward:
//   L = Σ_{rows r with mask_r} Σ_d (y[r, d] − ref[r, d])² / (count · D),   count = number of unmasked rows
//   dy[r, d] = 2 · (y − ref) / (count · D) for unmasked rows, 0 for masked ones
// A row is one token; the tuner masks the last token of every sample (and padding, if any).
#pragma once

#include <cstdint>
#include <vector>

namespace omni {

// 1 for every token of B samples of length T except the last of each sample.
std::vector<uint8_t> last_token_mask(int64_t B, int64_t T);

// Returns L (accumulated in double). mask [rows]: nonzero = the row counts. Throws when no row counts.
template <class T>
double masked_mse_loss_forward(const T* y, const T* ref, const uint8_t* mask, int64_t rows, int64_t dim);

// dy = dloss · ∂L/∂y (overwritten; dloss = 1 for the plain loss, or a loss scale).
template <class T>
void masked_mse_loss_backward(T* dy, const T* y, const T* ref, const uint8_t* mask, int64_t rows, int64_t dim,
                              double dloss = 1.0);

}  // namespace omni
