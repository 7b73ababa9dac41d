// The kernel's sockets while a bind is in flight (tools/jupyter/kernels/bias-init-tslab/zmq_bind_wait.js),
// on real zeromq sockets (the zeromq tslab installs): zeromq itself refuses send() and receive()
// until bind() has settled, and with the kernel's patch both wait for it instead, in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "path";
import { createRequire } from "module";

const ROOT = path.resolve(__dirname, "..");
const fromTslab = createRequire(path.join(ROOT, "node_modules", "tslab", "dist", "jupyter.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const zmq = fromTslab("zeromq") as typeof import("zeromq");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { patchBindWait } = createRequire(__filename)(path.join(ROOT, "tools", "jupyter", "kernels", "bias-init-tslab", "zmq_bind_wait.js")) as {
  patchBindWait: (z: unknown) => boolean;
};

const text = (frames: Buffer[]) => frames.map((f) => f.toString());

test("a kernel socket whose bind is in flight: zeromq refuses send and receive (EBUSY); patched, both wait for the bind and keep their order", async () => {
  // zeromq unpatched: what tslab's receive loop and replies ran into.
  const plain = new zmq.Router();
  const plainBound = plain.bind("tcp://127.0.0.1:*");
  assert.throws(() => plain.receive(), { code: "EBUSY", message: /blocked by a bind/ });
  assert.throws(() => plain.send(["x", "y"]), { code: "EBUSY", message: /blocked by a bind/ });
  await plainBound;
  plain.close();

  assert.equal(patchBindWait(zmq), true);
  assert.equal(patchBindWait(zmq), true, "a second call leaves the patch as it is");

  const server = new zmq.Router();
  const client = new zmq.Dealer();
  try {
    // receive() issued while the bind is in flight waits for it, then gets the client's message.
    const bound = server.bind("tcp://127.0.0.1:*");
    const first = server.receive();
    await bound;
    client.connect(server.lastEndpoint!);
    await client.send("ping");
    const [id, body] = await first;
    assert.equal(body.toString(), "ping");

    // send() during a second bind on the same socket: queued until it settles, in call order.
    const second = server.bind("tcp://127.0.0.1:*");
    const sends = [server.send([id, "pong-1"]), server.send([id, "pong-2"])];
    await second;
    await Promise.all(sends);
    await server.send([id, "pong-3"]);
    assert.deepEqual([text(await client.receive()), text(await client.receive()), text(await client.receive())],
      [["pong-1"], ["pong-2"], ["pong-3"]]);

    // A bind that fails still rejects for the caller, and the socket works after it.
    const taken = server.lastEndpoint!;
    await assert.rejects(server.bind(taken), { code: "EADDRINUSE" });
    await server.send([id, "after-a-failed-bind"]);
    assert.deepEqual(text(await client.receive()), ["after-a-failed-bind"]);
  } finally {
    client.close();
    server.close();
  }
});
