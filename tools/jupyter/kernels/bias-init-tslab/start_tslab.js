// The project's tslab kernel: the repository's tslab (node_modules/tslab, 1.0.22), started by
// launch.sh from the repository root, with two corrections to what it tells Jupyter and two to how
// it fails:
//
// 1. kernel_info_reply: tslab hard-codes language_info.version "3.7.2" and adds a codemirror_mode
//    (jupyter/jupyter.js, handleKernel). JupyterLab copies language_info into the notebook on
//    every save, so each save rewrote the committed metadata. The reply now carries the TypeScript
//    version tslab really compiles with (its @tslab/typescript-for-tslab, 5.0.4) and no
//    codemirror_mode (JupyterLab 4 picks TypeScript highlighting from the name and mimetype):
//    exactly the notebooks' committed language_info.
// 2. history_request: tslab answers it with nothing but `console.warn("unknown msg_type: ...")`
//    (in the server log, or in the last executed cell's stderr). It now gets an empty
//    history_reply, which the protocol allows ("kernels may not keep a history").
// 3. A port it cannot bind: Jupyter picks five free ports, writes them into the connection file and
//    starts the kernel; another process can take one in between ("Address already in use"). tslab
//    catches every unhandled rejection, logs it and stays alive, so the kernel never answers and
//    the client waits out its timeout (measured: alive and deaf after 15 s, and for good). The
//    kernel now says which port it could not bind and exits with status 1, so that it can be
//    started again: by JupyterLab's restarter (same ports, as jupyter_client 8.10 does; it works
//    once the other process lets the port go), by tools/jupyter/kernel_start.py for the headless
//    runs (a new kernel manager: new ports).
// 4. A message that arrives while its socket's bind is still completing: zeromq refuses the reply
//    and the next receive (EBUSY), and tslab's shell loop ends for good. Sends and receives now
//    wait for the bind (zmq_bind_wait.js says when that happens).
//
// If a tslab upgrade moves these internals, the kernel still starts, unpatched, and says so.
// (Not named kernel.js: in a kernelspec folder, that name is a browser extension classic Notebook loads.)
"use strict";
const path = require("path");

const tslabDir = path.join(process.cwd(), "node_modules", "tslab");
const jupyter = require(path.join(tslabDir, "dist", "jupyter"));
const { startKernel } = require(path.join(tslabDir, "dist", "main"));
const { versions } = require(path.join(tslabDir, "dist", "public"));
const { patchBindWait } = require("./zmq_bind_wait");

function patchKernelInfo(Handler) {
  const original = Handler.prototype.handleKernel;
  Handler.prototype.handleKernel = function () {
    const reply = original.call(this);
    if (reply.language_info && reply.language_info.name === "typescript") {
      reply.language_info.version = versions.typescript;
      delete reply.language_info.codemirror_mode;
    }
    return reply;
  };
}

/** The first kernel_info_request (always the first message a client sends) hands over tslab's message class. */
function patchHistory(Server) {
  let Message = null;
  const kernelInfo = Server.prototype.handleKernelInfo;
  Server.prototype.handleKernelInfo = function (sock, msg) {
    Message = msg.constructor;
    return kernelInfo.call(this, sock, msg);
  };
  const shell = Server.prototype.handleShellMessage;
  Server.prototype.handleShellMessage = async function (sock, ...frames) {
    if (Message === null || typeof Message.fromRaw !== "function") return shell.call(this, sock, ...frames);
    const msg = Message.fromRaw(this.connInfo.key, frames);
    if (msg.header.msg_type !== "history_request") return shell.call(this, sock, ...frames);
    this.publishStatus("busy", msg);
    const reply = msg.createReply();
    reply.header.msg_type = "history_reply";
    reply.content = { status: "ok", history: [] };
    reply.signAndSend(this.connInfo.key, sock);
    this.publishStatus("idle", msg);
  };
}

/** A socket that cannot bind ends the process (exit status 1) instead of leaving a deaf kernel. */
function patchBind(Server) {
  const bind = Server.prototype.bindSocket;
  Server.prototype.bindSocket = async function (sock, port) {
    try {
      return await bind.call(this, sock, port);
    } catch (err) {
      const addr = `${this.connInfo.transport}://${this.connInfo.ip}:${port}`;
      console.error(`bias-init kernel: cannot bind ${addr} (${err && err.message ? err.message : err}); exiting so that it can be started again`);
      process.exit(1);
    }
  };
}

const { JupyterHandlerImpl, ZmqServer } = jupyter;
const expected = JupyterHandlerImpl && ZmqServer && ["handleKernel"].every((m) => typeof JupyterHandlerImpl.prototype[m] === "function") &&
  ["handleKernelInfo", "handleShellMessage", "publishStatus", "bindSocket"].every((m) => typeof ZmqServer.prototype[m] === "function");
if (expected) {
  patchKernelInfo(JupyterHandlerImpl);
  patchHistory(ZmqServer);
  patchBind(ZmqServer);
} else {
  console.error(`bias-init kernel: tslab ${versions.tslab} does not have the internals start_tslab.js patches; running it unpatched (see tools/jupyter/kernels/bias-init-tslab/start_tslab.js)`);
}

// The zeromq tslab loads (resolved from tslab's folder, so the same module instance).
if (!patchBindWait(require(require.resolve("zeromq", { paths: [tslabDir] })))) {
  console.error("bias-init kernel: zeromq does not have the bind/send/receive methods zmq_bind_wait.js patches; running it unpatched");
}

const configPath = process.argv[2];
if (!configPath) {
  console.error("usage: node start_tslab.js CONNECTION_FILE (Jupyter passes it through launch.sh)");
  process.exit(2);
}
startKernel({ configPath, enableFindLocal: false, jsKernel: false, globalVersion: versions.tslab });
