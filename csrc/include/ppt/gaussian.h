// Math of 3D Gaussian splatting shared by the CPU and CUDA kernels: quaternion rotation, 3D
// covariance, EWA projection with the clamped Jacobian, 2D inverse covariance and radius, real
// spherical harmonics, per-pixel alpha, and the backward formula of each. Everything is a small
// template over the accumulation type T (float or double), so both devices run the same formulas.
#pragma once

#include <cmath>

#include "ppt/common.h"

namespace ppt {

// Compositing thresholds of the Inria rasterizer (and gsplat): contributions with alpha below
// 1/255 are skipped, and a pixel stops once its transmittance would fall below 1e-4.
constexpr double kMinAlpha = 1.0 / 255.0;
constexpr double kMinTransmittance = 1e-4;
// Jacobian clamp: x/z and y/z are limited to 1.3x the half field of view (Inria convention).
constexpr double kFovClampFactor = 1.3;
constexpr int kMaxShDegree = 3;
constexpr int kMaxShCoeffs = 16;

// Pinhole camera: world->camera rotation R (row-major), translation t, intrinsics.
template <typename T>
struct PinholeCamera {
  T R[9];
  T t[3];
  T fx, fy, cx, cy;
  T lim_x, lim_y;  // clamp of x/z and y/z in the EWA Jacobian

  // Only R and t (the intrinsics stay unset): enough for view directions.
  template <typename S>
  PPT_HOST_DEVICE static PinholeCamera load_pose(const S* viewmat) {
    PinholeCamera cam;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) cam.R[3 * i + j] = static_cast<T>(viewmat[4 * i + j]);
      cam.t[i] = static_cast<T>(viewmat[4 * i + 3]);
    }
    return cam;
  }

  // viewmat: 4x4 row-major world->camera; K: 3x3 row-major.
  template <typename S>
  PPT_HOST_DEVICE static PinholeCamera load(const S* viewmat, const S* K, int64_t width,
                                            int64_t height) {
    PinholeCamera cam = load_pose(viewmat);
    cam.fx = static_cast<T>(K[0]);
    cam.cx = static_cast<T>(K[2]);
    cam.fy = static_cast<T>(K[4]);
    cam.cy = static_cast<T>(K[5]);
    cam.lim_x = static_cast<T>(kFovClampFactor) * (T(0.5) * static_cast<T>(width) / cam.fx);
    cam.lim_y = static_cast<T>(kFovClampFactor) * (T(0.5) * static_cast<T>(height) / cam.fy);
    return cam;
  }

  PPT_HOST_DEVICE void to_camera(const T p[3], T out[3]) const {
    for (int i = 0; i < 3; ++i) out[i] = R[3 * i] * p[0] + R[3 * i + 1] * p[1] + R[3 * i + 2] * p[2] + t[i];
  }
  // Camera centre in world coordinates: -R^T t.
  PPT_HOST_DEVICE void centre(T out[3]) const {
    for (int j = 0; j < 3; ++j) out[j] = -(R[j] * t[0] + R[3 + j] * t[1] + R[6 + j] * t[2]);
  }
};

// Precision-preserving math: float stays float on host and device (no silent double promotion).
PPT_HOST_DEVICE float math_sqrt(float x) { return sqrtf(x); }
PPT_HOST_DEVICE double math_sqrt(double x) { return sqrt(x); }
PPT_HOST_DEVICE float math_exp(float x) { return expf(x); }
PPT_HOST_DEVICE double math_exp(double x) { return exp(x); }
PPT_HOST_DEVICE float math_ceil(float x) { return ceilf(x); }
PPT_HOST_DEVICE double math_ceil(double x) { return ceil(x); }
PPT_HOST_DEVICE float math_floor(float x) { return floorf(x); }
PPT_HOST_DEVICE double math_floor(double x) { return floor(x); }

template <typename T>
PPT_HOST_DEVICE T clamp_value(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Rotation matrix (row-major) of a unit quaternion (w, x, y, z).
template <typename T>
PPT_HOST_DEVICE void quat_to_rotmat(const T q[4], T R[9]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = 1 - 2 * (y * y + z * z);
  R[1] = 2 * (x * y - w * z);
  R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z);
  R[4] = 1 - 2 * (x * x + z * z);
  R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y);
  R[7] = 2 * (y * z + w * x);
  R[8] = 1 - 2 * (x * x + y * y);
}

// Gradient of quat_to_rotmat: v_R (row-major 3x3) -> v_q for the unit quaternion q.
template <typename T>
PPT_HOST_DEVICE void quat_to_rotmat_backward(const T q[4], const T v_R[9], T v_q[4]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  v_q[0] = 2 * (-z * v_R[1] + y * v_R[2] + z * v_R[3] - x * v_R[5] - y * v_R[6] + x * v_R[7]);
  v_q[1] = 2 * (y * v_R[1] + z * v_R[2] + y * v_R[3] - 2 * x * v_R[4] - w * v_R[5] + z * v_R[6] +
                w * v_R[7] - 2 * x * v_R[8]);
  v_q[2] = 2 * (-2 * y * v_R[0] + x * v_R[1] + w * v_R[2] + x * v_R[3] + z * v_R[5] - w * v_R[6] +
                z * v_R[7] - 2 * y * v_R[8]);
  v_q[3] = 2 * (-2 * z * v_R[0] - w * v_R[1] + x * v_R[2] + w * v_R[3] - 2 * z * v_R[4] + y * v_R[5] +
                x * v_R[6] + y * v_R[7]);
}

// Everything the forward projection computes for one Gaussian in one camera; the backward
// recomputes it instead of storing it.
template <typename T>
struct ProjectedGaussian {
  bool visible;
  T mean2d[2];
  T depth;
  T conic[3];  // inverse of the 2D covariance, [[a, b], [b, c]] stored as (a, b, c)
  int radius;
  // intermediates used by the backward
  T qn[4], qnorm, rot[9], M[9], cov_cam[9], pc[3], J[6];
  T cov2d[3];
  T rx, ry;  // x/z and y/z after the field-of-view clamp
  bool clamped_x, clamped_y;
};

template <typename T>
PPT_HOST_DEVICE void matmul3(const T A[9], const T B[9], T out[9]) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out[3 * i + j] = A[3 * i] * B[j] + A[3 * i + 1] * B[3 + j] + A[3 * i + 2] * B[6 + j];
}
// A * B^T
template <typename T>
PPT_HOST_DEVICE void matmul3_bt(const T A[9], const T B[9], T out[9]) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out[3 * i + j] = A[3 * i] * B[3 * j] + A[3 * i + 1] * B[3 * j + 1] + A[3 * i + 2] * B[3 * j + 2];
}
// A^T * B
template <typename T>
PPT_HOST_DEVICE void matmul3_at(const T A[9], const T B[9], T out[9]) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out[3 * i + j] = A[i] * B[j] + A[3 + i] * B[3 + j] + A[6 + i] * B[6 + j];
}

// EWA projection of one Gaussian: world mean, raw quaternion (w, x, y, z; normalized here) and
// scales into a 2D mean (pixel centres at integer + 0.5), depth, conic and integer radius.
// Invisible (radius 0) when z is outside [near, far], the 2D covariance is degenerate, or the
// 3-sigma box misses the image.
template <typename T>
PPT_HOST_DEVICE ProjectedGaussian<T> project_gaussian(const T mean[3], const T quat[4], const T scale[3],
                                                      const PinholeCamera<T>& cam, int64_t width,
                                                      int64_t height, T near_plane, T far_plane, T eps2d) {
  ProjectedGaussian<T> g;
  g.visible = false;
  g.radius = 0;
  cam.to_camera(mean, g.pc);
  const T x = g.pc[0], y = g.pc[1], z = g.pc[2];
  g.depth = z;
  g.mean2d[0] = g.mean2d[1] = 0;
  g.conic[0] = g.conic[1] = g.conic[2] = 0;
  if (!(z >= near_plane && z <= far_plane)) return g;

  g.qnorm = math_sqrt(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3]);
  for (int i = 0; i < 4; ++i) g.qn[i] = quat[i] / g.qnorm;
  quat_to_rotmat(g.qn, g.rot);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) g.M[3 * i + j] = g.rot[3 * i + j] * scale[j];
  T cov[9], tmp[9];
  matmul3_bt(g.M, g.M, cov);      // Sigma = M M^T
  matmul3(cam.R, cov, tmp);       // R Sigma
  matmul3_bt(tmp, cam.R, g.cov_cam);  // R Sigma R^T

  const T rx_raw = x / z, ry_raw = y / z;
  const T rx = clamp_value(rx_raw, -cam.lim_x, cam.lim_x);
  const T ry = clamp_value(ry_raw, -cam.lim_y, cam.lim_y);
  g.rx = rx;
  g.ry = ry;
  g.clamped_x = rx != rx_raw;
  g.clamped_y = ry != ry_raw;
  g.J[0] = cam.fx / z; g.J[1] = 0; g.J[2] = -cam.fx * rx / z;
  g.J[3] = 0; g.J[4] = cam.fy / z; g.J[5] = -cam.fy * ry / z;
  // cov2d = J cov_cam J^T (2x2 symmetric) + eps2d on the diagonal
  T JS[6];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      JS[3 * i + j] = g.J[3 * i] * g.cov_cam[j] + g.J[3 * i + 1] * g.cov_cam[3 + j] + g.J[3 * i + 2] * g.cov_cam[6 + j];
  const T a = JS[0] * g.J[0] + JS[1] * g.J[1] + JS[2] * g.J[2] + eps2d;
  const T b = JS[0] * g.J[3] + JS[1] * g.J[4] + JS[2] * g.J[5];
  const T c = JS[3] * g.J[3] + JS[4] * g.J[4] + JS[5] * g.J[5] + eps2d;
  g.cov2d[0] = a; g.cov2d[1] = b; g.cov2d[2] = c;
  const T det = a * c - b * b;
  if (!(det > 0)) return g;
  g.conic[0] = c / det;
  g.conic[1] = -b / det;
  g.conic[2] = a / det;
  const T mid = T(0.5) * (a + c);
  const T disc = mid * mid - det;
  const T lambda_max = mid + math_sqrt(disc > 0 ? disc : T(0));
  const T radius = math_ceil(T(3) * math_sqrt(lambda_max));
  g.mean2d[0] = cam.fx * rx_raw + cam.cx;
  g.mean2d[1] = cam.fy * ry_raw + cam.cy;
  if (g.mean2d[0] + radius <= 0 || g.mean2d[0] - radius >= static_cast<T>(width) ||
      g.mean2d[1] + radius <= 0 || g.mean2d[1] - radius >= static_cast<T>(height)) {
    return g;
  }
  g.radius = static_cast<int>(radius);
  g.visible = true;
  return g;
}

// Backward of project_gaussian for a visible Gaussian: gradients of the 2D mean, conic and depth
// -> gradients of the world mean, raw quaternion and scales (added to the outputs).
template <typename T>
PPT_HOST_DEVICE void project_gaussian_backward(const ProjectedGaussian<T>& g, const T scale[3],
                                               const PinholeCamera<T>& cam, const T v_mean2d[2],
                                               const T v_conic[3], T v_depth, T v_mean[3], T v_quat[4],
                                               T v_scale[3]) {
  const T x = g.pc[0], y = g.pc[1], z = g.pc[2];
  // conic = inverse(S): v_S = -X G X with G the symmetric split of v_conic.
  const T Xa = g.conic[0], Xb = g.conic[1], Xc = g.conic[2];
  const T Ga = v_conic[0], Gb = T(0.5) * v_conic[1], Gc = v_conic[2];
  // XG = X * G
  const T XG00 = Xa * Ga + Xb * Gb, XG01 = Xa * Gb + Xb * Gc;
  const T XG10 = Xb * Ga + Xc * Gb, XG11 = Xb * Gb + Xc * Gc;
  const T H00 = -(XG00 * Xa + XG01 * Xb);
  const T H01 = -(XG00 * Xb + XG01 * Xc);
  const T H11 = -(XG10 * Xb + XG11 * Xc);
  // dL/dcov2d as a symmetric 2x2 matrix V (H already is the symmetric split).
  const T V[4] = {H00, H01, H01, H11};
  // v_cov_cam = J^T V J ; v_J = 2 V J cov_cam
  T VJ[6];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) VJ[3 * i + j] = V[2 * i] * g.J[j] + V[2 * i + 1] * g.J[3 + j];
  T v_cov_cam[9];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) v_cov_cam[3 * i + j] = g.J[i] * VJ[j] + g.J[3 + i] * VJ[3 + j];
  T v_J[6];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      v_J[3 * i + j] = 2 * (VJ[3 * i] * g.cov_cam[j] + VJ[3 * i + 1] * g.cov_cam[3 + j] + VJ[3 * i + 2] * g.cov_cam[6 + j]);

  T v_pc[3] = {0, 0, v_depth};
  const T z2 = z * z;
  const T rx = g.rx, ry = g.ry;
  v_pc[2] += -cam.fx / z2 * v_J[0] + cam.fx * rx / z2 * v_J[2] - cam.fy / z2 * v_J[4] + cam.fy * ry / z2 * v_J[5];
  const T v_rx = -cam.fx / z * v_J[2], v_ry = -cam.fy / z * v_J[5];
  if (!g.clamped_x) {
    v_pc[0] += v_rx / z;
    v_pc[2] -= v_rx * x / z2;
  }
  if (!g.clamped_y) {
    v_pc[1] += v_ry / z;
    v_pc[2] -= v_ry * y / z2;
  }
  // mean2d = (fx x/z + cx, fy y/z + cy)
  v_pc[0] += cam.fx / z * v_mean2d[0];
  v_pc[1] += cam.fy / z * v_mean2d[1];
  v_pc[2] -= (cam.fx * x * v_mean2d[0] + cam.fy * y * v_mean2d[1]) / z2;
  // pc = R mean + t
  for (int j = 0; j < 3; ++j) v_mean[j] += cam.R[j] * v_pc[0] + cam.R[3 + j] * v_pc[1] + cam.R[6 + j] * v_pc[2];

  // cov_cam = R cov R^T -> v_cov = R^T v_cov_cam R ; cov = M M^T -> v_M = 2 v_cov M
  T tmp[9], v_cov[9], v_M[9];
  matmul3_at(cam.R, v_cov_cam, tmp);
  matmul3(tmp, cam.R, v_cov);
  matmul3(v_cov, g.M, v_M);
  T v_rot[9];
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      v_M[3 * i + j] *= 2;
      v_rot[3 * i + j] = v_M[3 * i + j] * scale[j];
    }
  }
  for (int j = 0; j < 3; ++j) v_scale[j] += v_M[j] * g.rot[j] + v_M[3 + j] * g.rot[3 + j] + v_M[6 + j] * g.rot[6 + j];
  T v_qn[4];
  quat_to_rotmat_backward(g.qn, v_rot, v_qn);
  // qn = q / |q|: v_q = (v_qn - qn (qn . v_qn)) / |q|
  const T dot = g.qn[0] * v_qn[0] + g.qn[1] * v_qn[1] + g.qn[2] * v_qn[2] + g.qn[3] * v_qn[3];
  for (int i = 0; i < 4; ++i) v_quat[i] += (v_qn[i] - g.qn[i] * dot) / g.qnorm;
}

// ---- spherical harmonics ---------------------------------------------------------------------
// Real SH basis of the Inria implementation (and gsplat) up to degree 3 at a unit direction.
// Optional d{x,y,z} receive the partial derivatives of each basis function.
template <typename T>
PPT_HOST_DEVICE void sh_basis(int degree, T x, T y, T z, T* b, T* dx, T* dy, T* dz) {
  const T C0 = T(0.28209479177387814), C1 = T(0.4886025119029199);
  const T C2[5] = {T(1.0925484305920792), T(-1.0925484305920792), T(0.31539156525252005),
                   T(-1.0925484305920792), T(0.5462742152960396)};
  const T C3[7] = {T(-0.5900435899266435), T(2.890611442640554), T(-0.4570457994644658),
                   T(0.3731763325901154), T(-0.4570457994644658), T(1.445305721320277),
                   T(-0.5900435899266435)};
  const bool grad = dx != nullptr;
  b[0] = C0;
  if (grad) dx[0] = dy[0] = dz[0] = 0;
  if (degree < 1) return;
  b[1] = -C1 * y; b[2] = C1 * z; b[3] = -C1 * x;
  if (grad) {
    dx[1] = 0; dy[1] = -C1; dz[1] = 0;
    dx[2] = 0; dy[2] = 0; dz[2] = C1;
    dx[3] = -C1; dy[3] = 0; dz[3] = 0;
  }
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z;
  b[4] = C2[0] * x * y;
  b[5] = C2[1] * y * z;
  b[6] = C2[2] * (2 * zz - xx - yy);
  b[7] = C2[3] * x * z;
  b[8] = C2[4] * (xx - yy);
  if (grad) {
    dx[4] = C2[0] * y; dy[4] = C2[0] * x; dz[4] = 0;
    dx[5] = 0; dy[5] = C2[1] * z; dz[5] = C2[1] * y;
    dx[6] = -2 * C2[2] * x; dy[6] = -2 * C2[2] * y; dz[6] = 4 * C2[2] * z;
    dx[7] = C2[3] * z; dy[7] = 0; dz[7] = C2[3] * x;
    dx[8] = 2 * C2[4] * x; dy[8] = -2 * C2[4] * y; dz[8] = 0;
  }
  if (degree < 3) return;
  b[9] = C3[0] * y * (3 * xx - yy);
  b[10] = C3[1] * x * y * z;
  b[11] = C3[2] * y * (4 * zz - xx - yy);
  b[12] = C3[3] * z * (2 * zz - 3 * xx - 3 * yy);
  b[13] = C3[4] * x * (4 * zz - xx - yy);
  b[14] = C3[5] * z * (xx - yy);
  b[15] = C3[6] * x * (xx - 3 * yy);
  if (grad) {
    dx[9] = 6 * C3[0] * x * y; dy[9] = 3 * C3[0] * (xx - yy); dz[9] = 0;
    dx[10] = C3[1] * y * z; dy[10] = C3[1] * x * z; dz[10] = C3[1] * x * y;
    dx[11] = -2 * C3[2] * x * y; dy[11] = C3[2] * (4 * zz - xx - 3 * yy); dz[11] = 8 * C3[2] * y * z;
    dx[12] = -6 * C3[3] * x * z; dy[12] = -6 * C3[3] * y * z; dz[12] = C3[3] * (6 * zz - 3 * xx - 3 * yy);
    dx[13] = C3[4] * (4 * zz - 3 * xx - yy); dy[13] = -2 * C3[4] * x * y; dz[13] = 8 * C3[4] * x * z;
    dx[14] = 2 * C3[5] * x * z; dy[14] = -2 * C3[5] * y * z; dz[14] = C3[5] * (xx - yy);
    dx[15] = 3 * C3[6] * (xx - yy); dy[15] = -6 * C3[6] * x * y; dz[15] = 0;
  }
}

// Unit view direction from the camera centre to the mean; a zero vector stays zero.
template <typename T>
PPT_HOST_DEVICE T view_direction(const T mean[3], const T centre[3], T dir[3]) {
  T d[3] = {mean[0] - centre[0], mean[1] - centre[1], mean[2] - centre[2]};
  const T norm = math_sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  const T inv = norm > 0 ? T(1) / norm : T(0);
  for (int i = 0; i < 3; ++i) dir[i] = d[i] * inv;
  return norm;
}

// Colour of one Gaussian seen from one camera: sum_k basis_k(dir) * sh[k] + 0.5, clamped at 0.
// sh: (K, 3) coefficients (only the first (degree+1)^2 are used); viewmat: 4x4 world->camera.
template <typename T>
PPT_HOST_DEVICE void sh_color_forward(int degree, const T* sh, const T mean[3], const T* viewmat, T out[3]) {
  const auto cam = PinholeCamera<T>::load_pose(viewmat);
  T centre[3], dir[3], basis[kMaxShCoeffs];
  cam.centre(centre);
  view_direction(mean, centre, dir);
  sh_basis<T>(degree, dir[0], dir[1], dir[2], basis, nullptr, nullptr, nullptr);
  const int used = (degree + 1) * (degree + 1);
  for (int ch = 0; ch < 3; ++ch) {
    T v = 0;
    for (int i = 0; i < used; ++i) v += basis[i] * sh[3 * i + ch];
    v += T(0.5);
    out[ch] = v > 0 ? v : T(0);
  }
}

// Adds the gradients of sh_color_forward w.r.t. the coefficients and the mean (through the view
// direction) to v_sh and v_mean. Clamped channels pass no gradient.
template <typename T>
PPT_HOST_DEVICE void sh_color_backward(int degree, const T* sh, const T mean[3], const T* viewmat,
                                       const T v_color[3], T* v_sh, T v_mean[3]) {
  const auto cam = PinholeCamera<T>::load_pose(viewmat);
  T centre[3], dir[3], basis[kMaxShCoeffs], dbx[kMaxShCoeffs], dby[kMaxShCoeffs], dbz[kMaxShCoeffs];
  cam.centre(centre);
  const T norm = view_direction(mean, centre, dir);
  sh_basis<T>(degree, dir[0], dir[1], dir[2], basis, dbx, dby, dbz);
  const int used = (degree + 1) * (degree + 1);
  T v_out[3];
  for (int ch = 0; ch < 3; ++ch) {
    T v = 0;
    for (int i = 0; i < used; ++i) v += basis[i] * sh[3 * i + ch];
    v_out[ch] = v + T(0.5) > 0 ? v_color[ch] : T(0);
  }
  T v_dir[3] = {0, 0, 0};
  for (int i = 0; i < used; ++i) {
    const T w = sh[3 * i] * v_out[0] + sh[3 * i + 1] * v_out[1] + sh[3 * i + 2] * v_out[2];
    for (int ch = 0; ch < 3; ++ch) v_sh[3 * i + ch] += basis[i] * v_out[ch];
    v_dir[0] += dbx[i] * w;
    v_dir[1] += dby[i] * w;
    v_dir[2] += dbz[i] * w;
  }
  if (degree == 0 || !(norm > 0)) return;
  // dir = d / |d| with d = mean - centre: v_d = (v_dir - dir (dir . v_dir)) / |d|
  const T dot = dir[0] * v_dir[0] + dir[1] * v_dir[1] + dir[2] * v_dir[2];
  for (int i = 0; i < 3; ++i) v_mean[i] += (v_dir[i] - dir[i] * dot) / norm;
}

// ---- compositing -----------------------------------------------------------------------------
// Gaussian falloff exponent at offset d = mean2d - pixel centre: 0.5 d^T conic d.
template <typename T>
PPT_HOST_DEVICE T gaussian_exponent(const T conic[3], T dx, T dy) {
  return T(0.5) * (conic[0] * dx * dx + conic[2] * dy * dy) + conic[1] * dx * dy;
}

// Opacity of a splat at offset (dx, dy) = mean2d - pixel centre: alpha = min(alpha_cap,
// opacity * exp(-0.5 d^T conic d)). Returns false when the pair is skipped (negative exponent from
// a non-positive-definite conic, or alpha below 1/255); falloff receives exp(-exponent).
template <typename T>
PPT_HOST_DEVICE bool splat_alpha(const T conic[3], T opacity, T dx, T dy, T alpha_cap, T* alpha, T* falloff) {
  const T sigma = gaussian_exponent(conic, dx, dy);
  if (sigma < 0) return false;
  *falloff = math_exp(-sigma);
  const T a = opacity * *falloff;
  *alpha = a < alpha_cap ? a : alpha_cap;
  return *alpha >= static_cast<T>(kMinAlpha);
}

// Backward of splat_alpha: adds d alpha / d (conic, mean2d, opacity) * v_alpha. A capped alpha
// is constant, so it passes no gradient.
template <typename T>
PPT_HOST_DEVICE void splat_alpha_backward(const T conic[3], T opacity, T dx, T dy, T falloff, T alpha_cap,
                                          T v_alpha, T v_conic[3], T v_mean2d[2], T* v_opacity) {
  if (!(opacity * falloff < alpha_cap)) return;
  *v_opacity += falloff * v_alpha;
  const T v_sigma = -opacity * falloff * v_alpha;
  v_conic[0] += T(0.5) * dx * dx * v_sigma;
  v_conic[1] += dx * dy * v_sigma;
  v_conic[2] += T(0.5) * dy * dy * v_sigma;
  v_mean2d[0] += (conic[0] * dx + conic[1] * dy) * v_sigma;
  v_mean2d[1] += (conic[1] * dx + conic[2] * dy) * v_sigma;
}

// Range [x0, x1) x [y0, y1) of the tiles overlapped by the box mean2d +- radius, clipped to the
// tile grid; empty when radius is 0.
template <typename T>
PPT_HOST_DEVICE int clip_tile_index(T v, int hi) {
  return static_cast<int>(v < 0 ? T(0) : (v > static_cast<T>(hi) ? static_cast<T>(hi) : v));
}

template <typename T>
PPT_HOST_DEVICE void tile_rect(const T mean2d[2], int radius, int tile_size, int tiles_x, int tiles_y,
                               int* x0, int* x1, int* y0, int* y1) {
  const T r = static_cast<T>(radius), ts = static_cast<T>(tile_size);
  *x0 = clip_tile_index(math_floor((mean2d[0] - r) / ts), tiles_x);
  *x1 = clip_tile_index(math_ceil((mean2d[0] + r) / ts), tiles_x);
  *y0 = clip_tile_index(math_floor((mean2d[1] - r) / ts), tiles_y);
  *y1 = clip_tile_index(math_ceil((mean2d[1] + r) / ts), tiles_y);
  if (radius <= 0) *x1 = *x0;
}

}  // namespace ppt
