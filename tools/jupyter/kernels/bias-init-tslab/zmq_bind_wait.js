// zeromq 6 (the version tslab 1.0.22 installs) marks a socket "blocked" from the moment bind() is
// called until bind's completion runs on the main thread, and send() or receive() on a blocked
// socket throws EBUSY ("Socket is blocked by a bind or unbind operation"). tslab starts its receive
// loops before it binds and never awaits the sends it makes. The bind itself happens on a worker
// thread, so a client that connects the moment the port listens can have its first message
// delivered to the receive already waiting while the completion has not yet run (a busy main
// thread, a loaded machine). The kernel's reply is then refused, the shell loop's next receive
// throws, and the loop ends: the kernel is alive and answers nothing again (seen once in CI, in
// the imbalance-sweep notebook's run).
//
// patchBindWait makes send() and receive() on a socket whose bind is in flight wait for that bind
// to settle, then call zeromq's own method: the order of sends on one socket is kept, and a socket
// that is not binding is untouched. test/kernel_bind.test.ts checks both halves on real sockets.
"use strict";

/**
 * Patches zeromq's socket classes once; returns false when zeromq no longer has the methods it wraps.
 * Socket.prototype.bind is not configurable, so each socket class (Router, Publisher, Reply, ...)
 * gets its own bind in front of it; send and receive are replaced on Socket.prototype.
 */
function patchBindWait(zmq) {
  const proto = zmq && zmq.Socket && zmq.Socket.prototype;
  if (!proto || !["bind", "send", "receive"].every((m) => typeof proto[m] === "function")) return false;
  if (proto.receive.biasInitBindWait) return true;
  const binding = new WeakMap();
  const { bind, send, receive } = proto;
  function bindAndRecord(address) {
    const result = bind.call(this, address);
    const settled = Promise.resolve(result).then(() => undefined, () => undefined);
    binding.set(this, settled);
    settled.then(() => {
      if (binding.get(this) === settled) binding.delete(this);
    });
    return result;
  }
  const waiting = (method) => {
    const wrapped = function (...args) {
      const settled = binding.get(this);
      return settled === undefined ? method.apply(this, args) : settled.then(() => method.apply(this, args));
    };
    wrapped.biasInitBindWait = true;
    return wrapped;
  };
  const own = { configurable: true, writable: true, enumerable: false };
  for (const cls of Object.values(zmq)) {
    if (typeof cls === "function" && cls.prototype instanceof zmq.Socket) {
      Object.defineProperty(cls.prototype, "bind", { ...own, value: bindAndRecord });
    }
  }
  Object.defineProperty(proto, "send", { ...own, value: waiting(send) });
  Object.defineProperty(proto, "receive", { ...own, value: waiting(receive) });
  return true;
}

module.exports = { patchBindWait };
