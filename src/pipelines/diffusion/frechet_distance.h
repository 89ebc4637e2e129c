// The Fréchet distance between Gaussians fitted to two sets of feature vectors: FID's formula, used here on the
// tiny-flux classifier's penultimate features (image_classifier.h) of generated vs real images:
//   |μa − μb|² + tr(Ca) + tr(Cb) − 2 tr((Ca^½ Cb Ca^½)^½),
// with unbiased covariances (N − 1, as torch.cov and numpy.cov), in float64. The matrix square roots come from
// symmetric eigendecompositions (cyclic Jacobi), negative rounding-level eigenvalues clamped to 0, so sets with fewer
// vectors than dimensions (singular covariances) work too.
#pragma once

#include <vector>

namespace omni {

// Each set needs at least 2 vectors, all of one length D (1 ≤ D ≤ 4096); errors name the set and the vector.
double frechet_distance(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b);

}  // namespace omni
