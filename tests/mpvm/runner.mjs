// Runs MicroPython code in the official WebAssembly port under node.
//
// Reads one JSON job on stdin:
//   {"trees": [[hostDir, vmDir], ...],   copied into the VM's in-memory FS
//    "files": [[hostPath, vmPath], ...],  single files (data, recordings)
//    "path": ["/flash", ...],             prepended to sys.path
//    "code": "...",                       run with runPythonAsync (top-level await works)
//    "heapsize": 8388608}
// Exit status 0 on success; on a Python exception the MicroPython traceback
// goes to stderr and the status is 1.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

const job = JSON.parse(readFileSync(0, "utf8"));
const COPY = /\.(py|json|csv|txt)$/;

function mkdirs(FS, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyTree(FS, src, dst) {
  mkdirs(FS, dst);
  for (const name of readdirSync(src)) {
    if (name === "__pycache__" || name.startsWith(".")) continue;
    const p = join(src, name);
    const st = statSync(p);
    if (st.isDirectory()) copyTree(FS, p, dst + "/" + name);
    else if (COPY.test(name)) FS.writeFile(dst + "/" + name, readFileSync(p));
  }
}

const out = (s) => process.stdout.write(s + "\n");
const err = (s) => process.stderr.write(s + "\n");
const mp = await loadMicroPython({ heapsize: job.heapsize || 8 * 1024 * 1024, stdout: out, stderr: err });
for (const [src, dst] of job.trees || []) copyTree(mp.FS, src, dst);
for (const [src, dst] of job.files || []) {
  mkdirs(mp.FS, dst.substring(0, dst.lastIndexOf("/")));
  mp.FS.writeFile(dst, readFileSync(src));
}
const prelude = "import sys\n" + (job.path || []).slice().reverse()
  .map((p) => `sys.path.insert(0, ${JSON.stringify(p)})\n`).join("");
try {
  mp.runPython(prelude);
  await mp.runPythonAsync(job.code);
} catch (e) {
  if (e && e.name === "PythonError") {
    err(e.message);
    process.exit(1);
  }
  throw e;
}
process.exit(0);
