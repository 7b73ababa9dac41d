// One SGD-with-momentum step for a group of parameters as one op (docs/performance.md, item 39):
//
//   BiasInitMomentumStep(params: N tensors, grads: N tensors, buffer; attrs axis, learning_rate,
//                        momentum, first) -> N updated params, the updated buffer
//
// PyTorch's rule as src/train/optimizer.ts writes it with TensorFlow's ops: buf = m * buf + g (on the
// first step buf = g), p = (-lr) * buf + p, each product and sum rounded to float on its own (no
// fma: the same bits as the Mul and Add ops it replaces). The group's parameters differ in shape
// only along `axis`, and the buffer is theirs concatenated along it, as the optimizer keeps it. In
// TensorFlow's ops one step of a group was ConcatV2 of the gradients, Mul, Add, ConcatV2 of the
// parameters, Mul, Add and SplitV: 7 ops, 5 passes over the group's values that this one does in one.
#include <algorithm>
#include <vector>

#include "parallel.h"
#include "simd.h"

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("BiasInitMomentumStep")
    .Input("params: N * float")
    .Input("grads: N * float")
    .Input("buffer: float")
    .Output("updated: N * float")
    .Output("new_buffer: float")
    .Attr("N: int >= 1")
    .Attr("axis: int >= 0")
    .Attr("learning_rate: float")
    .Attr("momentum: float")
    .Attr("first: bool")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      for (int i = 0; i < n; ++i) c->set_output(i, c->input(i));
      c->set_output(n, c->input(2 * n));
      return absl::OkStatus();
    });

namespace {

using bias_init::ForVectors;
using bias_init::Rounded;

// A run of one parameter's values that is contiguous in it and in the buffer.
struct Segment {
  int64_t member, param_offset, buffer_offset, count;
};

// Values per unit of work: segments are cut to this length, so that the cores share a group evenly.
constexpr int64_t kUnitValues = 16384;

class MomentumStepOp : public OpKernel {
 public:
  explicit MomentumStepOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("axis", &axis_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("learning_rate", &lr_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("momentum", &momentum_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("first", &first_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& p0 = ctx->input(0);
    OP_REQUIRES(ctx, axis_ < p0.dims() || (p0.dims() == 0 && axis_ == 0),
                tensorflow::errors::InvalidArgument("axis ", axis_, " out of range for a rank-", p0.dims(), " parameter"));
    // outer: the values before the axis; inner: after it (the same for every member).
    int64_t outer = 1, inner = 1, total = 0;
    for (int d = 0; d < axis_ && d < p0.dims(); ++d) outer *= p0.dim_size(d);
    for (int d = axis_ + 1; d < p0.dims(); ++d) inner *= p0.dim_size(d);
    std::vector<int64_t> sizes(n_);
    for (int i = 0; i < n_; ++i) {
      const Tensor& p = ctx->input(i);
      const Tensor& g = ctx->input(n_ + i);
      OP_REQUIRES(ctx, p.shape() == g.shape(),
                  tensorflow::errors::InvalidArgument("parameter ", i, " is ", p.shape().DebugString(), " but its gradient ", g.shape().DebugString()));
      bool fits = p.dims() == p0.dims();
      for (int d = 0; fits && d < p.dims(); ++d) fits = d == axis_ || p.dim_size(d) == p0.dim_size(d);
      OP_REQUIRES(ctx, fits, tensorflow::errors::InvalidArgument("parameter ", i, " ", p.shape().DebugString(), " does not concatenate with ", p0.shape().DebugString(), " along axis ", axis_));
      sizes[i] = p0.dims() == 0 ? 1 : p.dim_size(axis_);
      total += sizes[i];
    }
    TensorShape buffer_shape = p0.shape();
    if (p0.dims() > 0) buffer_shape.set_dim(axis_, total);
    const Tensor& old = ctx->input(2 * n_);
    OP_REQUIRES(ctx, first_ || old.shape() == buffer_shape,
                tensorflow::errors::InvalidArgument("buffer must be ", buffer_shape.DebugString(), ", got ", old.shape().DebugString()));
    std::vector<float*> out(n_);
    for (int i = 0; i < n_; ++i) {
      Tensor* t;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, ctx->input(i).shape(), &t));
      out[i] = t->flat<float>().data();
    }
    Tensor* new_buffer;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(n_, buffer_shape, &new_buffer));

    std::vector<Segment> segments;
    for (int64_t o = 0; o < outer; ++o) {
      int64_t prefix = 0;
      for (int i = 0; i < n_; ++i) {
        const int64_t run = sizes[i] * inner;
        for (int64_t s = 0; s < run; s += kUnitValues) {
          segments.push_back({i, o * run + s, (o * total + prefix) * inner + s, std::min(kUnitValues, run - s)});
        }
        prefix += sizes[i];
      }
    }
    const float m = momentum_, neg_lr = -lr_;
    const float* bp = first_ ? nullptr : old.flat<float>().data();
    float* nb = new_buffer->flat<float>().data();
    auto work = [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        const Segment& seg = segments[s];
        const float* p = ctx->input(seg.member).flat<float>().data() + seg.param_offset;
        const float* g = ctx->input(n_ + seg.member).flat<float>().data() + seg.param_offset;
        float* q = out[seg.member] + seg.param_offset;
        float* b = nb + seg.buffer_offset;
        const float* ob = bp == nullptr ? nullptr : bp + seg.buffer_offset;
        int64_t k = ForVectors(seg.count, [&](auto f, int64_t k) {
          using F = decltype(f);
          const typename F::V buf = ob == nullptr ? F::Load(g + k) : F::Add(Rounded(F::Mul(F::Set(m), F::Load(ob + k))), F::Load(g + k));
          F::Store(b + k, buf);
          F::Store(q + k, F::Add(Rounded(F::Mul(F::Set(neg_lr), buf)), F::Load(p + k)));
        });
        for (; k < seg.count; ++k) {
          const float buf = ob == nullptr ? g[k] : Rounded(m * ob[k]) + g[k];
          b[k] = buf;
          q[k] = Rounded(neg_lr * buf) + p[k];
        }
      }
    };
    bias_init::ParallelUnits(ctx, static_cast<int64_t>(segments.size()), kUnitValues * 4, work);
  }

 private:
  int n_;
  int64_t axis_;
  float lr_, momentum_;
  bool first_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("BiasInitMomentumStep").Device(tensorflow::DEVICE_CPU), MomentumStepOp);
