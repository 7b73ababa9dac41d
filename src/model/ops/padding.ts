// PyTorch's padding of the k x k convolutions (odd k): (k-1)/2 on every side, and the output size
// it gives. One definition for the layer API, the pure-JS kernels and the model's summary tables.
//
// May touch: nothing (plain numbers).

/** The padding on each side of a k x k convolution: (k-1)/2 (odd k only). */
export function symmetricPad(kernel: number): number {
  if (kernel % 2 !== 1) throw new Error(`src/model/ops/padding.ts: symmetric padding needs an odd kernel, got ${kernel}`);
  return (kernel - 1) / 2;
}

/** Output side of a k x k convolution with symmetric padding over an input of side `size`. */
export function convOutputSize(size: number, kernel: number, stride: number): number {
  return Math.floor((size + 2 * symmetricPad(kernel) - kernel) / stride) + 1;
}
