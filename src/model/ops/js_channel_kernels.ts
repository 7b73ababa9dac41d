// The pure-JS per-channel kernels over NHWC values, for TF.js's pure-JS 'cpu' backend: BatchNorm
// (+ SiLU) fused into one pass forward and two backward, the spatial mean, and the
// squeeze-excitation channel scaling. Plain loops wrapped as differentiable ops by jsOp (see
// js_kernels.ts for why); same math as the TF.js formulation, checked by test/model.test.ts.
//
// May touch: @tensorflow/tfjs, jsOp from js_kernels.ts, and (types only) the BatchNorm state and
// mode of layers.ts; the BatchNorm writes the running statistics into those variables.
// Called only by ops/layers.ts.
import * as tf from "@tensorflow/tfjs";
import { jsOp } from "./js_kernels";
import type { BatchNormMode, BatchNormState } from "./layers";

/** Per-channel mean and biased variance of [rows, c] values, accumulated in float64. */
function channelMoments(x: Float32Array, rows: number, c: number): { mean: Float64Array; variance: Float64Array } {
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let r = 0; r < rows; r++) for (let ch = 0; ch < c; ch++) mean[ch] += x[r * c + ch];
  for (let ch = 0; ch < c; ch++) mean[ch] /= rows;
  for (let r = 0; r < rows; r++) {
    for (let ch = 0; ch < c; ch++) {
      const d = x[r * c + ch] - mean[ch];
      variance[ch] += d * d;
    }
  }
  for (let ch = 0; ch < c; ch++) variance[ch] /= rows;
  return { mean, variance };
}

/**
 * BatchNorm (+ SiLU) of [rows, C] values in plain loops. Gradient with batch statistics:
 * dx = gamma / sigma * (dz - mean(dz) - xhat * mean(dz * xhat)); with running statistics the two
 * mean terms vanish. The forward keeps sigmoid(z) so the backward needs no exp.
 */
export function jsBatchNormAct(x: tf.Tensor2D, bn: BatchNormState, mode: BatchNormMode, activation: boolean): tf.Tensor2D {
  const [rows, c] = x.shape;
  return jsOp([x, bn.gamma, bn.beta], [rows, c], ([xv, gamma, beta]) => {
    let mean: Float64Array;
    let variance: Float64Array;
    if (mode.training) {
      ({ mean, variance } = channelMoments(xv, rows, c));
      if (mode.updateRunningStats) {
        const m = bn.momentum;
        const rm = bn.runningMean.dataSync();
        const rv = bn.runningVar.dataSync();
        const newMean = new Float32Array(c);
        const newVar = new Float32Array(c);
        for (let ch = 0; ch < c; ch++) {
          newMean[ch] = (1 - m) * rm[ch] + m * mean[ch];
          newVar[ch] = (1 - m) * rv[ch] + ((m * rows) / (rows - 1)) * variance[ch];
        }
        tf.tidy(() => {
          bn.runningMean.assign(tf.tensor1d(newMean));
          bn.runningVar.assign(tf.tensor1d(newVar));
        });
      }
    } else {
      mean = Float64Array.from(bn.runningMean.dataSync());
      variance = Float64Array.from(bn.runningVar.dataSync());
    }
    const invStd = new Float64Array(c);
    const scale = new Float64Array(c);
    const shift = new Float64Array(c);
    for (let ch = 0; ch < c; ch++) {
      invStd[ch] = 1 / Math.sqrt(variance[ch] + bn.eps);
      scale[ch] = gamma[ch] * invStd[ch];
      shift[ch] = beta[ch] - mean[ch] * scale[ch];
    }
    const y = new Float32Array(rows * c);
    const gate = activation ? new Float32Array(rows * c) : null;
    for (let r = 0; r < rows; r++) {
      const o = r * c;
      for (let ch = 0; ch < c; ch++) {
        const z = xv[o + ch] * scale[ch] + shift[ch];
        if (gate === null) {
          y[o + ch] = z;
        } else {
          const s = 1 / (1 + Math.exp(-z));
          gate[o + ch] = s;
          y[o + ch] = z * s;
        }
      }
    }
    const backward = (dy: Float32Array): Float32Array[] => {
      // dz = dy * silu'(z), with silu'(z) = s * (1 + z * (1 - s)).
      const dz = gate === null ? dy : new Float32Array(rows * c);
      if (gate !== null) {
        for (let r = 0; r < rows; r++) {
          const o = r * c;
          for (let ch = 0; ch < c; ch++) {
            const s = gate[o + ch];
            const z = xv[o + ch] * scale[ch] + shift[ch];
            dz[o + ch] = dy[o + ch] * s * (1 + z * (1 - s));
          }
        }
      }
      const sumDz = new Float64Array(c);
      const sumDzXhat = new Float64Array(c);
      for (let r = 0; r < rows; r++) {
        const o = r * c;
        for (let ch = 0; ch < c; ch++) {
          const d = dz[o + ch];
          sumDz[ch] += d;
          sumDzXhat[ch] += d * (xv[o + ch] - mean[ch]) * invStd[ch];
        }
      }
      const dx = new Float32Array(rows * c);
      if (mode.training) {
        const meanDz = new Float64Array(c);
        const meanDzXhat = new Float64Array(c);
        for (let ch = 0; ch < c; ch++) {
          meanDz[ch] = sumDz[ch] / rows;
          meanDzXhat[ch] = sumDzXhat[ch] / rows;
        }
        for (let r = 0; r < rows; r++) {
          const o = r * c;
          for (let ch = 0; ch < c; ch++) {
            const xhat = (xv[o + ch] - mean[ch]) * invStd[ch];
            dx[o + ch] = scale[ch] * (dz[o + ch] - meanDz[ch] - xhat * meanDzXhat[ch]);
          }
        }
      } else {
        for (let r = 0; r < rows; r++) {
          const o = r * c;
          for (let ch = 0; ch < c; ch++) dx[o + ch] = scale[ch] * dz[o + ch];
        }
      }
      return [dx, Float32Array.from(sumDzXhat), Float32Array.from(sumDz)];
    };
    return { y, backward };
  }) as tf.Tensor2D;
}

/** Mean over H and W of NHWC, as [N, C]. */
export function jsSpatialMean(x: tf.Tensor4D): tf.Tensor2D {
  const [n, h, w, c] = x.shape;
  const p = h * w;
  return jsOp([x], [n, c], ([xv]) => {
    const y = new Float32Array(n * c);
    for (let b = 0; b < n; b++) {
      for (let q = 0; q < p; q++) {
        const xo = (b * p + q) * c;
        for (let ch = 0; ch < c; ch++) y[b * c + ch] += xv[xo + ch];
      }
    }
    for (let i = 0; i < y.length; i++) y[i] /= p;
    return {
      y,
      backward: (dy) => {
        const dx = new Float32Array(n * p * c);
        for (let b = 0; b < n; b++) {
          for (let q = 0; q < p; q++) {
            const xo = (b * p + q) * c;
            for (let ch = 0; ch < c; ch++) dx[xo + ch] = dy[b * c + ch] / p;
          }
        }
        return [dx];
      },
    };
  }) as tf.Tensor2D;
}

/** x [N, H, W, C] times a per-sample, per-channel scale [N, C] (the SE gate). */
export function jsScaleChannels(x: tf.Tensor4D, scale: tf.Tensor2D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const p = h * w;
  return jsOp([x, scale], [n, h, w, c], ([xv, sv]) => {
    const y = new Float32Array(n * p * c);
    for (let b = 0; b < n; b++) {
      for (let q = 0; q < p; q++) {
        const o = (b * p + q) * c;
        for (let ch = 0; ch < c; ch++) y[o + ch] = xv[o + ch] * sv[b * c + ch];
      }
    }
    return {
      y,
      backward: (dy) => {
        const dx = new Float32Array(n * p * c);
        const ds = new Float32Array(n * c);
        for (let b = 0; b < n; b++) {
          for (let q = 0; q < p; q++) {
            const o = (b * p + q) * c;
            for (let ch = 0; ch < c; ch++) {
              dx[o + ch] = dy[o + ch] * sv[b * c + ch];
              ds[b * c + ch] += dy[o + ch] * xv[o + ch];
            }
          }
        }
        return [dx, ds];
      },
    };
  }) as tf.Tensor4D;
}
