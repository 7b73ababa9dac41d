// Sending outputs to the tslab kernel as Jupyter MIME bundles, new or updated in place (display_id).
//
// tslab's public `display.raw` sends one MIME type per output, so bundles go through its
// lower-level writer (`tslab/dist/jupyter`'s `lastWriteDisplayData`). Outside a kernel (CLI, tests)
// every output falls back to its text/plain part on stdout, unless a sink is installed with
// `setDisplaySink` (tests capture bundles that way).
import { randomBytes } from "crypto";

/** A Jupyter MIME bundle: MIME type -> content (strings, or JSON for +json types). */
export type MimeBundle = Record<string, unknown>;

export interface DisplayMessage {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: { display_id?: string };
}

/** Receives every output; `update` replaces the earlier output with the same display_id. */
export type DisplaySink = (message: DisplayMessage, update: boolean) => void;

let installedSink: DisplaySink | null = null;

/** Routes outputs to `sink` (tests), or back to the automatic choice with null. */
export function setDisplaySink(sink: DisplaySink | null): void {
  installedSink = sink;
}

/** True inside a tslab kernel (tslab defines `__tslab__` on the global object before any cell runs). */
function inKernel(): boolean {
  return (globalThis as Record<string, unknown>).__tslab__ !== undefined;
}

type KernelWriter = (message: DisplayMessage, update: boolean) => void;

/**
 * tslab's writer for the cell being executed. It is replaced at every execute request (it carries
 * that request's parent header), so it is looked up per output, never cached. Loaded lazily: its
 * module pulls in tslab's TypeScript compiler, which is not wanted outside a kernel.
 */
function kernelWriter(): KernelWriter | null {
  if (!inKernel()) return null;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const jupyter = require("tslab/dist/jupyter") as { lastWriteDisplayData: KernelWriter | null };
  return jupyter.lastWriteDisplayData;
}

function send(data: MimeBundle, displayId: string | null, update: boolean, metadata: Record<string, unknown> = {}): void {
  const message: DisplayMessage = { data, metadata, transient: displayId === null ? {} : { display_id: displayId } };
  if (installedSink) return installedSink(message, update);
  const writer = kernelWriter();
  if (writer) return writer(message, update);
  const text = data["text/plain"];
  if (typeof text === "string" && text.length > 0) console.log(text);
}

/** Shows one bundle as a new output; `metadata` is stored with it in the notebook (tools read it). */
export function showBundle(bundle: MimeBundle, metadata: Record<string, unknown> = {}): void {
  send(bundle, null, false, metadata);
}

/** An output that can be rewritten in place (Jupyter display_id + update_display_data). */
export class LiveOutput {
  readonly displayId = randomBytes(8).toString("hex");
  private shown = false;

  /** First call creates the output, later calls replace it. */
  set(bundle: MimeBundle): void {
    send(bundle, this.displayId, this.shown);
    this.shown = true;
  }
}
