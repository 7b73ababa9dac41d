// The walkthrough's grid of sample training images: the first images of the positive class and of
// the others, as PNGs with their class names, the positive ones framed.
import type { PreparedData } from "../data/prepare";
import { CLASS_NAMES, IMAGE_SIDE } from "../data/cifar10";
import { imageToRgbBytes } from "../data/preprocess";
import { sampleIndices } from "../data/task";
import { showImageGrid } from "./html_output";
import { rgbToPng } from "./png";

/** Shows the first `positives` images of the positive class and `others` of the rest, with labels. */
export function showSampleImages(data: PreparedData, positives: number, others: number): void {
  const { train, positive, dataset } = data;
  const images = sampleIndices(train.labels, positive.index, positives, others).map((i) => ({
    png: rgbToPng(imageToRgbBytes(train.images, i), IMAGE_SIDE, IMAGE_SIDE), caption: CLASS_NAMES[train.labels[i]], highlight: train.labels[i] === positive.index,
  }));
  showImageGrid(images, `Training images (${dataset === "synthetic" ? "SYNTHETIC stand-in" : "CIFAR-10"}); framed: the positive class "${positive.name}"`);
}
