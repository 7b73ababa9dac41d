// Smoke test of a freshly built native TF.js package (tools/native/build.sh, step 5).
// Usage: node tools/native/verify.cjs <package dir> <repo dir>
// Prints one JSON line (facts for .native/READY) on success; exits 1 with a reason otherwise.
// Gradients are compared against the pure-JS 'cpu' backend rather than against
// hand-written numbers: the point is that the TF 2.21 kernels behind the 4.22
// binding agree with the reference implementation TF.js itself ships.
'use strict';
const fs = require('fs');
const path = require('path');

const [pkgDir, repoDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!pkgDir || !repoDir) {
  console.error('usage: node verify.cjs <package dir> <repo dir>');
  process.exit(2);
}

function fail(msg) {
  console.error(`verify.cjs: ${msg}`);
  process.exit(1);
}

let tf;
try {
  tf = require(pkgDir);
} catch (e) {
  fail(`require('${pkgDir}') threw: ${e && e.message}`);
}
if (tf.getBackend() !== 'tensorflow') fail(`backend is '${tf.getBackend()}', expected 'tensorflow'`);

// The package must share the repo's tfjs-core instance, or src/ (which imports
// '@tensorflow/tfjs' from the repo) would not see the backend it registered.
const coreFromPkg = require.resolve('@tensorflow/tfjs-core', { paths: [pkgDir] });
const coreFromRepo = require.resolve('@tensorflow/tfjs-core', { paths: [repoDir] });
if (coreFromPkg !== coreFromRepo) fail(`two tfjs-core copies: ${coreFromPkg} vs ${coreFromRepo}`);
const repoTf = require(require.resolve('@tensorflow/tfjs', { paths: [repoDir] }));
if (repoTf.getBackend() !== 'tensorflow') fail(`the repo's @tensorflow/tfjs reports backend '${repoTf.getBackend()}'`);

// Deterministic inputs (no RNG: identical on both backends).
function ramp(shape, scale) {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(i * 0.37 + scale) * scale;
  return tf.tensor(v, shape);
}

function grads() {
  return tf.tidy(() => {
    const x = ramp([2, 9, 9, 3], 1.0);
    const w = ramp([3, 3, 3, 4], 0.5);
    const dw = ramp([3, 3, 4, 2], 0.7);
    const loss = (xx, ww, dd) => {
      const h = tf.relu(tf.conv2d(xx, ww, 1, 'same'));
      const d = tf.depthwiseConv2d(h, dd, [2, 2], 'same');
      return tf.sum(tf.square(d));
    };
    const g = tf.grads(loss)([x, w, dw]);
    return g.map((t) => t.dataSync().slice());
  });
}

function maxRelDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return worst;
}

const native = grads();
// Momentum update runs through the native kernels too (the experiment's optimizer).
const v = tf.variable(tf.tensor1d([1, -2, 3]));
const opt = tf.train.momentum(0.1, 0.9);
for (let i = 0; i < 3; i++) opt.minimize(() => tf.sum(tf.square(v)));
const momentumResult = Array.from(v.dataSync());

// The pure-JS backend greets Node users with an "install our node backend" banner: not news here.
const warn = console.warn;
console.warn = (...args) => {
  if (!String(args[0]).includes('looks like you are running TensorFlow.js in Node.js')) warn(...args);
};
tf.setBackend('cpu');
const reference = grads();
tf.setBackend('tensorflow');
console.warn = warn;

const names = ['d/dx (conv2d input)', 'd/dw (conv2d filter)', 'd/dw (depthwise filter)'];
const diffs = native.map((g, i) => maxRelDiff(g, reference[i]));
diffs.forEach((d, i) => {
  if (!(d < 1e-4)) fail(`${names[i]} differs from the pure-JS backend by ${d}`);
});
// v <- v - lr*m with m <- 0.9 m + 2v: for v0=1 the three steps give 0.8, 0.46, 0.062.
const expected = [0.062, -0.124, 0.186];
momentumResult.forEach((x, i) => {
  if (Math.abs(x - expected[i]) > 1e-5) fail(`momentum step gave ${momentumResult}, expected ${expected}`);
});

// The patched binding (patch_binding.py) sets list-of-strings attributes: _FusedMatMul with
// fused_ops ["BiasAdd"], as evaluation runs it (src/model/ops/native_eval.ts), equals MatMul + bias.
// On a GPU this also shows whether TF has the fused kernel there (UNTESTED: never run on one).
const fused = tf.tidy(() => {
  const [a, w, bias] = [ramp([5, 4], 1.0), ramp([4, 3], 0.5), ramp([3], 0.3)];
  const b = tf.backend().binding;
  let out;
  try {
    out = tf.backend().executeMultipleOutputs('_FusedMatMul', [
      { name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
      { name: 'transpose_a', type: b.TF_ATTR_BOOL, value: false },
      { name: 'transpose_b', type: b.TF_ATTR_BOOL, value: false },
      { name: 'num_args', type: b.TF_ATTR_INT, value: 1 },
      { name: 'fused_ops', type: b.TF_ATTR_STRING, value: ['BiasAdd'] },
      { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: 1e-4 },
    ], [a, w, bias], 1)[0];
  } catch (e) {
    fail(`_FusedMatMul with a string-list attribute failed (was patch_binding.py applied?): ${String(e && e.message).split('\n')[0]}`);
  }
  return maxRelDiff(out.dataSync(), tf.add(tf.matMul(a, w), bias).dataSync());
});
if (!(fused < 1e-6)) fail(`_FusedMatMul(BiasAdd) differs from MatMul + bias by ${fused}`);

// And lists of types (IdentityN's T), which oneDNN's fused convolution takes (its TArgs).
try {
  const b = tf.backend().binding;
  tf.tidy(() => tf.backend().executeMultipleOutputs('IdentityN', [{ name: 'T', type: b.TF_ATTR_TYPE, value: [b.TF_FLOAT] }], [tf.ones([1])], 1)[0].dataSync());
} catch (e) {
  fail(`IdentityN with a type-list attribute failed (was patch_binding.py applied?): ${String(e && e.message).split('\n')[0]}`);
}

// Whether this libtensorflow has oneDNN's fused convolution + SiLU, which evaluation uses on x86
// (src/model/ops/native_eval.ts; without it evaluation runs the Eigen ops): a fact, not a failure.
const oneDnnFusedConv = tf.tidy(() => {
  const b = tf.backend().binding;
  const [x, w, bias] = [ramp([1, 2, 2, 4], 0.5), ramp([1, 1, 4, 3], 0.25), ramp([3], 0.1)];
  try {
    const out = tf.backend().executeMultipleOutputs('_MklNativeFusedConv2D', [
      { name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
      { name: 'strides', type: b.TF_ATTR_INT, value: [1, 1, 1, 1] },
      { name: 'padding', type: b.TF_ATTR_STRING, value: 'VALID' },
      { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
      { name: 'dilations', type: b.TF_ATTR_INT, value: [1, 1, 1, 1] },
      { name: 'num_args', type: b.TF_ATTR_INT, value: 1 },
      { name: 'fused_ops', type: b.TF_ATTR_STRING, value: ['BiasAdd', '_MklSwish'] },
      { name: 'TArgs', type: b.TF_ATTR_TYPE, value: [b.TF_FLOAT] },
      { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: 1e-4 },
      { name: '_kernel', type: b.TF_ATTR_STRING, value: 'MklNameChangeOp' },
    ], [x, w, bias], 1)[0];
    const z = tf.add(tf.conv2d(x, w, 1, 'valid'), bias);
    return maxRelDiff(out.dataSync(), tf.mul(z, tf.sigmoid(z)).dataSync()) < 1e-5;
  } catch (e) {
    return false;
  }
});

// This project's kernels (tools/native/ops/, build.sh step 4), where built: loading the addon must
// register its ops, and on a CPU with AVX2 and FMA (which they are compiled for) the forward must
// give BatchNorm with the batch's statistics, then SiLU, as computed here in float64.
const opsPath = path.join(pkgDir, 'bias-ops', 'bias_init_ops.node');
let customOps = 'not built';
if (fs.existsSync(opsPath)) {
  let addon;
  try {
    addon = require(opsPath);
  } catch (e) {
    fail(`require('${opsPath}') threw: ${String(e && e.message).split('\n')[0]}`);
  }
  const flags = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m) || ['', ''])[1].split(/\s+/);
  if (!flags.includes('avx2') || !flags.includes('fma')) {
    customOps = `built (${addon.ops.join(', ')}), not run: this CPU lacks AVX2 or FMA`;
  } else {
    const b = tf.backend().binding;
    const [n, c] = [70, 11];
    const x = ramp([n, 1, 1, c], 1.5);
    const gamma = ramp([c], 0.8), beta = ramp([c], 0.3);
    const y = tf.backend().executeMultipleOutputs('BiasInitBatchNormAct', [
      { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: 1e-5 },
      { name: 'momentum', type: b.TF_ATTR_FLOAT, value: 0.1 },
      { name: 'activation', type: b.TF_ATTR_BOOL, value: true },
    ], [x, gamma, beta, tf.zeros([c]), tf.ones([c])], 5)[0].dataSync();
    const [xv, gv, bv] = [x.dataSync(), gamma.dataSync(), beta.dataSync()];
    const want = new Float64Array(n * c);
    for (let j = 0; j < c; j++) {
      let mean = 0, v = 0;
      for (let i = 0; i < n; i++) mean += xv[i * c + j] / n;
      for (let i = 0; i < n; i++) v += (xv[i * c + j] - mean) ** 2 / n;
      for (let i = 0; i < n; i++) {
        const z = (xv[i * c + j] - mean) / Math.sqrt(v + 1e-5) * gv[j] + bv[j];
        want[i * c + j] = z / (1 + Math.exp(-z));
      }
    }
    const diff = maxRelDiff(y, want);
    if (!(diff < 1e-5)) fail(`this project's BatchNorm + SiLU kernel differs from float64 by ${diff} (relative)`);
    customOps = `${addon.ops.join(', ')} (checked against float64: ${diff.toExponential(1)})`;
  }
}

// Which libtensorflow the process really mapped: proves the rpath works without LD_LIBRARY_PATH.
const maps = fs.readFileSync('/proc/self/maps', 'utf8');
const libMatch = maps.match(/\S*libtensorflow_cc\.so\.2\S*/) || maps.match(/\S*libtensorflow\.so\.2\S*/);
const binding = tf.backend().binding;

console.log(JSON.stringify({
  backend: tf.getBackend(),
  tfVersion: binding.TF_Version,
  tfjsVersion: tf.version.tfjs,
  tfjsNodeVersion: tf.version['tfjs-node'],
  nodeVersion: process.version,
  napi: process.versions.napi,
  libraryPath: libMatch ? libMatch[0] : null,
  tfjsCore: coreFromRepo,
  maxRelDiffVsCpu: Math.max(...diffs),
  fusedMatMulBias: true,
  oneDnnFusedConv,
  customOpsCheck: customOps,
  // The binding lists TF's devices when its context is created; true when one is a GPU.
  gpuDevice: tf.backend().isUsingGpuDevice === true,
}));
