// CPU sparse convolution as indirect GEMMs (ppt/indirect_gemm.h): for each kernel offset the
// micro-kernels read the input rows of the offset's pairs in place and add the products straight
// into the output rows, so no gathered copy or product buffer ever leaves the caches. Each kernel
// is compiled for AVX-512, AVX2 + FMA and the baseline, chosen at run time (simd::cpu_isa()).
//
// Determinism without atomics: one offset's output rows are distinct (and its input rows, which the
// input gradient writes), as every kernel map guarantees, and every row sums its offsets in offset
// order, whether threads split blocks of output rows or one offset's pairs (conv_all_offsets). The
// weight gradient sums each offset's pairs in fixed slabs, reduced in slab order. Results are
// therefore bitwise identical run to run and for any thread count. The loops run on
// ppt::parallel_for (ppt/cpu_parallel.h), few per call; the zero fills, padding and transposes of
// outputs and weights are loops of its own rather than torch operators.
// Half inputs run in float32; float64 runs in float64.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "ppt/cpu_parallel.h"
#include "ppt/indirect_gemm.h"
#include "ppt/offset_pairs.h"
#include "sparse/sparse_checks.h"

namespace ppt {
namespace {

// Pairs per block of the forward kernel: their input rows (<= 48 x Cin) stay in L2 while every
// column block of the weight passes over them, and the next block's rows are prefetched meanwhile
// (48 gave 10-15% more GFLOP/s than 96 on 32-128 channels, 100k voxels, AVX-512 Zen 4).
constexpr int64_t kPairBlock = 48;
// Destination rows per block of for_each_pair_by_destination: a block of up to 256 channels stays
// in L2 while every offset adds to it.
constexpr int64_t kRowBlock = 256;
// Pairs per block of the weight gradient, copied to contiguous L2 buffers first.
constexpr int64_t kOuterBlock = 256;
// Pairs per weight-gradient slab: the unit of parallel work and of the fixed-order reduction.
constexpr int64_t kSlabPairs = 8192;
// Bytes of weight-gradient partial sums held at once.
constexpr int64_t kPartialBytes = int64_t{64} << 20;

// dst[dst_rows[p]] += src[src_rows[p]] @ weight for p < count; weight (src_channels, dst_channels).
template <typename S>
struct ConvPairs {
  const S* src;
  int64_t src_channels;
  const int32_t* src_rows;
  const int32_t* dst_rows;
  int64_t count;
  const S* weight;
  int64_t dst_channels;
  S* dst;
};

// Asks for every cache line of `bytes` bytes at `row` to be brought into L2 (the rows of a block
// are scattered, so the hardware prefetchers cannot guess them).
PPT_ALWAYS_INLINE void prefetch_row(const void* row, int64_t bytes) {
  const char* at = static_cast<const char*>(row);
  for (int64_t line = 0; line < bytes; line += 64) __builtin_prefetch(at + line, 0, 2);
}

template <typename S, typename Isa>
PPT_ALWAYS_INLINE void conv_pairs(const ConvPairs<S>& job) {
  const S* a_rows[kPairBlock];
  S* c_rows[kPairBlock];
  const int64_t src_bytes = job.src_channels * static_cast<int64_t>(sizeof(S));
  const int64_t dst_bytes = job.dst_channels * static_cast<int64_t>(sizeof(S));
  for (int64_t start = 0; start < job.count; start += kPairBlock) {
    const int64_t block = std::min(kPairBlock, job.count - start);
    for (int64_t i = 0; i < block; ++i) {
      a_rows[i] = job.src + static_cast<int64_t>(job.src_rows[start + i]) * job.src_channels;
      c_rows[i] = job.dst + static_cast<int64_t>(job.dst_rows[start + i]) * job.dst_channels;
    }
    // The next block's rows load while this block multiplies.
    const int64_t next_end = std::min(job.count, start + 2 * kPairBlock);
    for (int64_t i = start + block; i < next_end; ++i) {
      prefetch_row(job.src + static_cast<int64_t>(job.src_rows[i]) * job.src_channels, src_bytes);
      prefetch_row(job.dst + static_cast<int64_t>(job.dst_rows[i]) * job.dst_channels, dst_bytes);
    }
    simd::gemm_rows<S, Isa>(block, job.dst_channels, job.src_channels, a_rows, 1, job.weight, job.dst_channels,
                            c_rows);
  }
}

// product (in_channels, out_channels) += sum_p input[in_rows[p]]^T grad[out_rows[p]] for p < count.
template <typename S>
struct OuterPairs {
  const S* input;
  int64_t in_channels;
  const S* grad;
  int64_t out_channels;
  const int32_t* in_rows;
  const int32_t* out_rows;
  int64_t count;
  S* product;
};

// Scratch of one weight-gradient task: contiguous copies of a block of input and gradient rows
// and the row pointers of the micro-kernels.
template <typename S>
struct OuterScratch {
  std::vector<S> input_block, grad_block;
  std::vector<const S*> a_rows;
  std::vector<S*> c_rows;
};

template <typename S, typename Isa>
PPT_ALWAYS_INLINE void outer_pairs(const OuterPairs<S>& job, OuterScratch<S>& scratch) {
  const int64_t in_channels = job.in_channels, out_channels = job.out_channels;
  S* input_block = scratch.input_block.data();
  S* grad_block = scratch.grad_block.data();
  for (int64_t c = 0; c < in_channels; ++c) {
    scratch.a_rows[c] = input_block + c;  // A(c, p) = input_block[p * in_channels + c]
    scratch.c_rows[c] = job.product + c * out_channels;
  }
  for (int64_t start = 0; start < job.count; start += kOuterBlock) {
    const int64_t block = std::min(kOuterBlock, job.count - start);
    for (int64_t i = 0; i < block; ++i) {
      const S* input_row = job.input + static_cast<int64_t>(job.in_rows[start + i]) * in_channels;
      const S* grad_row = job.grad + static_cast<int64_t>(job.out_rows[start + i]) * out_channels;
      for (int64_t c = 0; c < in_channels; ++c) input_block[i * in_channels + c] = input_row[c];
      for (int64_t c = 0; c < out_channels; ++c) grad_block[i * out_channels + c] = grad_row[c];
    }
    // The next block's rows load while this block multiplies.
    const int64_t next_end = std::min(job.count, start + 2 * kOuterBlock);
    for (int64_t i = start + block; i < next_end; ++i) {
      prefetch_row(job.input + static_cast<int64_t>(job.in_rows[i]) * in_channels, in_channels * sizeof(S));
      prefetch_row(job.grad + static_cast<int64_t>(job.out_rows[i]) * out_channels, out_channels * sizeof(S));
    }
    simd::gemm_rows<S, Isa>(in_channels, out_channels, block, scratch.a_rows.data(), in_channels, grad_block,
                            out_channels, scratch.c_rows.data());
  }
}

// One compiled copy of both kernels per instruction set.
#define PPT_CONV_KERNELS(SUFFIX, TARGET, ISA)                                                      \
  template <typename S>                                                                            \
  TARGET void conv_pairs_##SUFFIX(const ConvPairs<S>& job) {                                       \
    conv_pairs<S, ISA>(job);                                                                       \
  }                                                                                                \
  template <typename S>                                                                            \
  TARGET void outer_pairs_##SUFFIX(const OuterPairs<S>& job, OuterScratch<S>& scratch) {           \
    outer_pairs<S, ISA>(job, scratch);                                                             \
  }
PPT_CONV_KERNELS(baseline, , simd::Baseline)
#if PPT_X86_DISPATCH
PPT_CONV_KERNELS(avx2, PPT_TARGET(PPT_AVX2_TARGET), simd::Avx2)
PPT_CONV_KERNELS(avx512, PPT_TARGET(PPT_AVX512_TARGET), simd::Avx512)
#endif
#undef PPT_CONV_KERNELS

template <typename S>
struct ConvKernels {
  void (*conv)(const ConvPairs<S>&);
  void (*outer)(const OuterPairs<S>&, OuterScratch<S>&);
};

template <typename S>
ConvKernels<S> conv_kernels() {
#if PPT_X86_DISPATCH
  switch (simd::cpu_isa()) {
    case simd::CpuIsa::kAvx512: return {&conv_pairs_avx512<S>, &outer_pairs_avx512<S>};
    case simd::CpuIsa::kAvx2: return {&conv_pairs_avx2<S>, &outer_pairs_avx2<S>};
    case simd::CpuIsa::kBaseline: break;
  }
#endif
  return {&conv_pairs_baseline<S>, &outer_pairs_baseline<S>};
}

at::ScalarType compute_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// The micro-kernels take whole vectors of columns: the last dimension of their operands is
// zero-padded to a multiple of simd::kColumnBytes (a 6-channel output costs 16 float columns
// instead of a scalar loop).
template <typename S>
int64_t vector_width_columns(int64_t columns) {
  constexpr int64_t width = simd::kColumnBytes / static_cast<int64_t>(sizeof(S));
  return (columns + width - 1) / width * width;
}

// A contiguous copy of the 2-D or 3-D tensor t (any strides, element type S) with its last dimension
// cut or zero-padded to `columns`; t itself when it is contiguous and that wide already. The copy
// runs on ppt::parallel_for, not through torch's copy and pad operators.
template <typename S>
at::Tensor contiguous_columns(const at::Tensor& t, int64_t columns) {
  if (t.size(-1) == columns && t.is_contiguous()) return t;
  const at::Tensor view = t.dim() == 2 ? t.unsqueeze(0) : t;
  std::vector<int64_t> sizes = t.sizes().vec();
  sizes.back() = columns;
  at::Tensor out = at::empty(sizes, t.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t inner = view.size(1), kept = std::min(columns, view.size(2));
  const int64_t outer_stride = view.stride(0), row_stride = view.stride(1), column_stride = view.stride(2);
  const S* in = view.const_data_ptr<S>();
  S* result = out.data_ptr<S>();
  parallel_for(0, view.size(0) * inner, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, columns)),
               [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const S* row = in + (r / inner) * outer_stride + (r % inner) * row_stride;
      S* row_out = result + r * columns;
      for (int64_t c = 0; c < kept; ++c) row_out[c] = row[c * column_stride];
      std::fill(row_out + kept, row_out + columns, S(0));
    }
  });
  return out;
}

// dst (num_dst, Cb) = sum_k scatter(src[src_rows_k] @ weight[k], dst_rows_k) for weight (K, Ca, Cb)
// in the compute type, offset k's pairs lying in [offsets[k], offsets[k + 1]). Every destination
// row adds its offsets' products in offset order (for_each_pair_by_destination), so the sums do
// not depend on how the work is split.
template <typename S>
at::Tensor conv_all_offsets(const at::Tensor& src, const at::Tensor& weight, const int32_t* src_rows,
                            const int32_t* dst_rows, const std::vector<int64_t>& offsets, int64_t num_dst) {
  const at::Tensor source = src.contiguous();
  const at::Tensor kernel = contiguous_columns<S>(weight, vector_width_columns<S>(weight.size(2)));
  const int64_t src_channels = kernel.size(1), dst_channels = kernel.size(2);
  at::Tensor dst = at::empty({num_dst, dst_channels}, source.options());
  if (dst_channels == 0) return dst;
  const S* source_data = source.const_data_ptr<S>();
  const S* kernel_data = kernel.const_data_ptr<S>();
  S* target = dst.data_ptr<S>();
  const auto conv = conv_kernels<S>().conv;
  // Enough multiply-adds per chunk of an offset's pairs to amortize claiming it.
  const int64_t pair_grain = std::max<int64_t>(kPairBlock, (int64_t{1} << 16) / std::max<int64_t>(1, src_channels * dst_channels));
  for_each_pair_by_destination(
      dst_rows, offsets, num_dst, kRowBlock, pair_grain,
      [&](int64_t first, int64_t last) { std::fill(target + first * dst_channels, target + last * dst_channels, S(0)); },
      [&](size_t k, int64_t begin, int64_t end) {
        if (src_channels == 0) return;
        conv({source_data, src_channels, src_rows + begin, dst_rows + begin, end - begin,
              kernel_data + static_cast<int64_t>(k) * src_channels * dst_channels, dst_channels, target});
      });
  return contiguous_columns<S>(dst, weight.size(2));
}

at::Tensor conv_all_offsets(const at::Tensor& src, const at::Tensor& weight, const at::Tensor& src_rows,
                            const at::Tensor& dst_rows, const std::vector<int64_t>& offsets, int64_t num_dst) {
  const at::ScalarType compute = compute_type(src.scalar_type());
  const int32_t* from = src_rows.const_data_ptr<int32_t>();
  const int32_t* to = dst_rows.const_data_ptr<int32_t>();
  const at::Tensor source = src.to(compute), kernel = weight.to(compute);
  const at::Tensor dst = compute == at::kDouble ? conv_all_offsets<double>(source, kernel, from, to, offsets, num_dst)
                                                : conv_all_offsets<float>(source, kernel, from, to, offsets, num_dst);
  return dst.to(src.scalar_type());
}

// grad_weight (K, Cin, Cout) = per offset input[in_rows_k]^T grad[out_rows_k], in fixed slabs. Slabs
// run in groups of consecutive offsets whose partial sums fit kPartialBytes, each group reduced
// into grad_weight in slab order before the next: memory stays bounded and the grouping, like
// the slabs, depends only on the sizes, never on the thread count.
template <typename S>
at::Tensor weight_grad_all_offsets(const at::Tensor& input_in, const at::Tensor& grad_in, const int32_t* in_rows,
                                   const int32_t* out_rows, const std::vector<int64_t>& offsets) {
  const at::Tensor input = input_in.contiguous();
  const at::Tensor grad = contiguous_columns<S>(grad_in, vector_width_columns<S>(grad_in.size(1)));
  const int64_t in_channels = input.size(1), out_channels = grad.size(1);
  const int64_t matrix = in_channels * out_channels;
  const int64_t volume = static_cast<int64_t>(offsets.size()) - 1;
  at::Tensor grad_weight = at::empty({volume, in_channels, out_channels}, input.options());
  S* result = grad_weight.data_ptr<S>();
  parallel_for(0, volume * matrix, 65536, [&](int64_t begin, int64_t end) { std::fill(result + begin, result + end, S(0)); });
  // (K, Cin, Cout) -> (Cout, K, Cin)
  const auto spconv_layout = [&] {
    return contiguous_columns<S>(grad_weight.narrow(2, 0, grad_in.size(1)).permute({2, 0, 1}), in_channels);
  };
  if (matrix == 0) return spconv_layout();
  struct Slab {
    int64_t offset, start, count;
  };
  const S* features = input.const_data_ptr<S>();
  const S* gradient = grad.const_data_ptr<S>();
  const auto outer = conv_kernels<S>().outer;
  const int64_t slabs_per_group = std::max<int64_t>(1, kPartialBytes / (matrix * static_cast<int64_t>(sizeof(S))));
  std::unique_ptr<S[]> partials;
  std::vector<Slab> slabs;
  for (size_t first = 0; first + 1 < offsets.size();) {
    // One group: whole offsets while their slabs fit (always at least one offset).
    slabs.clear();
    size_t k = first;
    for (; k + 1 < offsets.size(); ++k) {
      const int64_t count = (offsets[k + 1] - offsets[k] + kSlabPairs - 1) / kSlabPairs;
      if (!slabs.empty() && static_cast<int64_t>(slabs.size()) + count > slabs_per_group) break;
      for (int64_t start = offsets[k]; start < offsets[k + 1]; start += kSlabPairs)
        slabs.push_back({static_cast<int64_t>(k), start, std::min(kSlabPairs, offsets[k + 1] - start)});
    }
    first = k;
    if (slabs.empty()) continue;
    const int64_t num_slabs = static_cast<int64_t>(slabs.size());
    partials.reset(new S[num_slabs * matrix]);
    S* partial = partials.get();
    parallel_for(0, num_slabs, 1, [&](int64_t begin, int64_t end) {
      OuterScratch<S> scratch{std::vector<S>(kOuterBlock * in_channels), std::vector<S>(kOuterBlock * out_channels),
                              std::vector<const S*>(in_channels), std::vector<S*>(in_channels)};
      for (int64_t s = begin; s < end; ++s) {
        std::fill(partial + s * matrix, partial + (s + 1) * matrix, S(0));
        outer({features, in_channels, gradient, out_channels, in_rows + slabs[s].start, out_rows + slabs[s].start,
               slabs[s].count, partial + s * matrix},
              scratch);
      }
    });
    // Every element sums its slabs in slab order; threads split the elements.
    parallel_for(0, matrix, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t s = 0; s < num_slabs; ++s) {
        S* slot = result + slabs[s].offset * matrix;
        const S* add = partial + s * matrix;
        for (int64_t i = begin; i < end; ++i) slot[i] += add[i];
      }
    });
  }
  return spconv_layout();
}

at::Tensor sparse_conv_cpu(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& pairs,
                           const at::Tensor& pair_offsets, int64_t num_out) {
  const std::vector<int64_t> offsets =
      check_conv_args("sparse_conv", features, weight, pairs, pair_offsets, num_out);
  const at::Tensor rows = pairs.contiguous();
  // weight (Cout, K, Cin) -> (K, Cin, Cout)
  return conv_all_offsets(features, weight.permute({1, 2, 0}), rows[0], rows[1], offsets, num_out);
}

std::tuple<at::Tensor, at::Tensor> sparse_conv_backward_cpu(const at::Tensor& grad_out, const at::Tensor& features,
                                                            const at::Tensor& weight, const at::Tensor& pairs,
                                                            const at::Tensor& pair_offsets, int64_t num_out) {
  const std::vector<int64_t> offsets =
      check_conv_args("sparse_conv_backward", features, weight, pairs, pair_offsets, num_out);
  check_conv_backward_grad(grad_out, features, weight, num_out);
  const at::Tensor rows = pairs.contiguous();
  const at::Tensor in_rows = rows[0], out_rows = rows[1];
  // The adjoint of the forward: the same pairs read backwards with weight (Cout, K, Cin) -> (K, Cout, Cin).
  at::Tensor grad_features =
      conv_all_offsets(grad_out, weight.permute({1, 0, 2}), out_rows, in_rows, offsets, features.size(0));

  const at::ScalarType compute = compute_type(features.scalar_type());
  const int32_t* from = in_rows.const_data_ptr<int32_t>();
  const int32_t* to = out_rows.const_data_ptr<int32_t>();
  const at::Tensor input = features.to(compute), grad = grad_out.to(compute);
  const at::Tensor grad_weight = compute == at::kDouble ? weight_grad_all_offsets<double>(input, grad, from, to, offsets)
                                                        : weight_grad_all_offsets<float>(input, grad, from, to, offsets);
  return {grad_features, grad_weight.to(weight.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("sparse_conv", cpu_op<&sparse_conv_cpu>);
  m.impl("sparse_conv_backward", cpu_op<&sparse_conv_backward_cpu>);
}

}  // namespace ppt
