#!/usr/bin/env python3
"""List a WASM module's imports, exports (with signatures), memories and custom sections.

Usage: inspect_wasm.py [--check] FILE.wasm...

--check exits 1 unless each module imports nothing and exports `memory` and the four
ABI v1 functions with their signatures (plugins/README.md), and nothing else but globals
(rustc's linker always exports `__heap_base` and `__data_end`; the host ignores them).
Standard library only, because wasm-tools and wabt are not installed by the project.
"""

import sys

SECTION_NAMES = {0: "custom", 1: "type", 2: "import", 3: "function", 5: "memory",
                 6: "global", 7: "export", 10: "code", 11: "data"}
VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
            0x70: "funcref", 0x6F: "externref"}
KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
ABI_V1 = {
    "lk_abi_version": ("func", "() -> i32"),
    "lk_alloc": ("func", "(i32) -> i32"),
    "lk_evaluate": ("func", "(i32, i32) -> i64"),
    "lk_reset": ("func", "() -> ()"),
    "memory": ("memory", None),
}


class Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def byte(self):
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self):
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result

    def name(self):
        n = self.uleb()
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def limits(self):
        flags = self.byte()
        lo = self.uleb()
        hi = self.uleb() if flags & 1 else None
        return lo, hi


def signature(params, results):
    def fmt(ts):
        return ", ".join(VALTYPES.get(t, hex(t)) for t in ts)
    res = fmt(results) if results else "()"
    return f"({fmt(params)}) -> {res}"


def inspect(data):
    if data[:8] != b"\0asm\x01\0\0\0":
        raise ValueError("not a WASM binary module, version 1")
    r = Reader(data, 8)
    types, imports, funcs, exports, memories, customs = [], [], [], [], [], []
    imported_funcs = 0
    while r.pos < len(data):
        sid, size = r.byte(), r.uleb()
        body = Reader(data[r.pos:r.pos + size])
        r.pos += size
        if sid == 1:
            for _ in range(body.uleb()):
                assert body.byte() == 0x60
                params = [body.byte() for _ in range(body.uleb())]
                results = [body.byte() for _ in range(body.uleb())]
                types.append(signature(params, results))
        elif sid == 2:
            for _ in range(body.uleb()):
                module, field, kind = body.name(), body.name(), body.byte()
                detail = ""
                if kind == 0:
                    detail = types[body.uleb()]
                    imported_funcs += 1
                elif kind == 1:
                    body.byte()
                    body.limits()
                elif kind == 2:
                    detail = "pages %s..%s" % body.limits()
                elif kind == 3:
                    body.byte()
                    body.byte()
                imports.append((module, field, KINDS.get(kind, kind), detail))
        elif sid == 3:
            funcs = [body.uleb() for _ in range(body.uleb())]
        elif sid == 5:
            memories = [body.limits() for _ in range(body.uleb())]
        elif sid == 7:
            for _ in range(body.uleb()):
                name, kind, index = body.name(), body.byte(), body.uleb()
                detail = None
                if kind == 0 and index >= imported_funcs:
                    detail = types[funcs[index - imported_funcs]]
                exports.append((name, KINDS.get(kind, kind), detail))
        elif sid == 0:
            customs.append(body.name())
    return imports, exports, memories, customs


def main(argv):
    check = "--check" in argv
    files = [a for a in argv if a != "--check"]
    if not files:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ok = True
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        imports, exports, memories, customs = inspect(data)
        print(f"{path}: {len(data)} bytes")
        print(f"  imports: {imports if imports else 'none'}")
        for name, kind, detail in exports:
            print(f"  export {name}: {kind}{' ' + detail if detail else ''}")
        for lo, hi in memories:
            print(f"  memory: initial {lo} pages, maximum {hi if hi is not None else 'none'}")
        print(f"  custom sections: {customs if customs else 'none'}")
        if check:
            found = {name: (kind, detail) for name, kind, detail in exports
                     if not (kind == "global" and name not in ABI_V1)}
            if imports:
                print(f"  FAIL: imports {imports}; ABI v1 modules import nothing")
                ok = False
            if found != ABI_V1:
                print(f"  FAIL: exports {found}; ABI v1 wants these and only globals besides: {ABI_V1}")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
