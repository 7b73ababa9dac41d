// The Kubernetes manifest (deploy/k8s/grid-job.yaml; no cluster here, so UNTESTED on one) read
// with PyYAML: an Indexed Job whose every pod runs the CLI's worker on a ReadWriteMany volume, with
// flags the CLI accepts. The Slurm script's run is tested for real in test/slurm.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseCli } from "../src/cli";
import { ROOT } from "./helpers/worker_logs";

const PY = path.join(ROOT, ".venv/bin/python");
const hasYaml = fs.existsSync(PY) && spawnSync(PY, ["-c", "import yaml"]).status === 0;

type Doc = Record<string, any>;

test("deploy/k8s/grid-job.yaml: an Indexed Job of CLI workers on one ReadWriteMany volume, labelled untested", { skip: hasYaml ? false : "needs .venv with PyYAML (make setup)" }, () => {
  const file = path.join(ROOT, "deploy/k8s/grid-job.yaml");
  const text = fs.readFileSync(file, "utf8");
  assert.match(text, /^# UNTESTED: no Kubernetes cluster was available/);
  const r = spawnSync(PY, ["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const docs = JSON.parse(r.stdout) as Doc[];
  const pvc = docs.find((d) => d.kind === "PersistentVolumeClaim") as Doc;
  const job = docs.find((d) => d.kind === "Job") as Doc;
  assert.deepEqual(pvc.spec.accessModes, ["ReadWriteMany"]);
  assert.equal(job.apiVersion, "batch/v1");
  assert.equal(job.spec.completionMode, "Indexed");
  assert.equal(job.spec.parallelism, job.spec.completions);
  const pod = job.spec.template.spec;
  assert.equal(pod.volumes[0].persistentVolumeClaim.claimName, pvc.metadata.name);
  const [container] = pod.containers;
  const mount = container.volumeMounts.find((m: Doc) => m.name === pod.volumes[0].name).mountPath as string;
  assert.ok(container.workingDir.startsWith(mount + "/"), "the repository is on the shared volume");
  assert.match(container.command.join(" "), /exec bash tools\/run-ts\.sh src\/cli\.ts "\$@"/);
  const request = parseCli(container.args);
  assert.equal(request.worker, true);
  assert.ok(request.resultsDir.startsWith(mount + "/"), "the store is on the shared volume");
  assert.ok(request.overrides.data?.dir?.startsWith(mount + "/"), "so is the data");
  assert.equal(container.resources.limits["nvidia.com/gpu"], 1);
  const threads = container.env.find((e: Doc) => e.name === "TF_NUM_INTRAOP_THREADS");
  assert.deepEqual(threads?.valueFrom?.resourceFieldRef, { containerName: container.name, resource: "requests.cpu", divisor: "1" }, "TensorFlow's threads: the pod's CPU request");
  assert.ok(Number(container.resources.requests.cpu) >= 1);
  assert.ok(pod.terminationGracePeriodSeconds >= 60, "time to finish the step in flight after SIGTERM");
});
