# The gdb side of the REPL's `locals` and `p <expr>` (src/debug/native.rs
# runs it with `gdb -batch -p <pid>`). Its parameters come from the
# environment, so that a typed expression never passes through gdb's own
# command line:
#   SMOL_DEVX_TID    the thread whose stack holds the frame
#   SMOL_DEVX_FILE   a source line of the frame's function (where the
#   SMOL_DEVX_LINE   backtrace saw it)
#   SMOL_DEVX_NTH    which frame of that function (0: innermost)
#   SMOL_DEVX_QUERY  "locals", or "p" with the expression in SMOL_DEVX_EXPR
# What it prints between two MARK lines is the REPL's answer; a line
# starting with "!" is a failure, said in one line.
import os
import re

import gdb

MARK = "\x1esmol-devx\x1e"
# Longest rendering of a value by `p`, and in the one-line-each list of
# `locals`; most elements of a sequence shown.
MAX_VALUE = 4000
MAX_LOCAL = 240
MAX_ELEMENTS = 100


def answer(lines):
    print(MARK)
    for line in lines:
        print(line)
    print(MARK)


def relative(path):
    return path[2:] if path.startswith("./") else path


def find_frame(tid, wanted_file, wanted_line, nth):
    """The nth frame, innermost first, of the function holding
    wanted_file:wanted_line on thread tid: the backtrace saw the frame at
    that line; it may be at another line of the same function now."""
    thread = next((t for t in gdb.selected_inferior().threads() if t.ptid[1] == tid), None)
    if thread is None:
        return None
    thread.switch()
    wanted_file = relative(wanted_file)
    frames = []
    frame = gdb.newest_frame()
    while frame is not None:
        frames.append(frame)
        frame = frame.older()
    # A frame still at that line (a pause's) is found by its line alone;
    # only a frame that moved on needs the function's code range, whose
    # lookup costs a tenth of a second more.
    at_line = [f for f in frames if at(f, wanted_file, wanted_line)]
    if len(at_line) > nth:
        return at_line[nth]
    _, sals = gdb.decode_line("%s:%d" % (wanted_file, wanted_line))
    pcs = [sal.pc for sal in sals or ()]
    holding = [f for f in frames if holds(f, pcs)]
    return holding[nth] if len(holding) > nth else None


def at(frame, wanted_file, wanted_line):
    sal = frame.find_sal()
    if sal.symtab is None or sal.line != wanted_line:
        return False
    name = relative(sal.symtab.filename)
    return name == wanted_file or sal.symtab.fullname().endswith("/" + wanted_file)


def holds(frame, pcs):
    try:
        block = frame.block()
    except RuntimeError:
        return False
    while block is not None and block.function is None:
        block = block.superblock
    return block is not None and any(block.start <= pc < block.end for pc in pcs)


def internal(name):
    # The state an async fn keeps for the runtime: the future it awaits,
    # its context, its captured references, its unnamed temporaries.
    return name.startswith("__") or name == "_task_context" or name.startswith("_ref__")


def render(value, depth=0):
    try:
        shown = gdb.default_visualizer(value)
    except Exception:
        shown = None
    hint = getattr(shown, "display_hint", None)
    if shown is not None and depth < 4 and hasattr(shown, "children") and hint and hint() == "array":
        items = []
        for i, (_, child) in enumerate(shown.children()):
            if i == MAX_ELEMENTS:
                items.append("...")
                break
            items.append(render(child, depth + 1) if isinstance(child, gdb.Value) else str(child))
        text = "[" + ", ".join(items) + "]"
    else:
        text = value.format_string(max_elements=MAX_ELEMENTS, styling=False)
    return " ".join(text.split("\n"))


def cut(text, limit, more):
    return text if len(text) <= limit else text[:limit] + "... " + more


INDEXED = re.compile(r"^(.+)\[\s*(\d+)\s*\]$")


def evaluate(expr):
    """gdb's value of expr; `v[i]` also where v is a sequence gdb only
    shows through a pretty printer (a Vec, a VecDeque), which gdb's own
    Rust expressions cannot index."""
    try:
        return gdb.parse_and_eval(expr)
    except gdb.error:
        indexed = INDEXED.match(expr)
        if indexed is None:
            raise
        base, index = evaluate(indexed.group(1)), int(indexed.group(2))
        shown = gdb.default_visualizer(base)
        if shown is None or not hasattr(shown, "children"):
            raise
        for i, (_, child) in enumerate(shown.children()):
            if i == index:
                return child if isinstance(child, gdb.Value) else gdb.Value(child)
        raise gdb.error("index %d out of range for %s" % (index, indexed.group(1).strip()))


def frame_locals(frame):
    try:
        block = frame.block()
    except RuntimeError:
        return ["! no debug information for this frame: build with debug info (cargo's dev profile has it)"]
    seen = {}
    while block is not None:
        for symbol in block:
            if (symbol.is_variable or symbol.is_argument) and symbol.name not in seen:
                seen[symbol.name] = symbol
        if block.function is not None:
            break
        block = block.superblock
    shown = sorted(
        (s for name, s in seen.items() if not internal(name)),
        key=lambda s: (not s.is_argument, s.line),
    )
    if not shown:
        return ["(no locals in this frame)"]
    lines = []
    for symbol in shown:
        try:
            value = cut(render(symbol.value(frame)), MAX_LOCAL, "(p " + symbol.name + " shows more)")
            lines.append(symbol.name + " = " + value)
        except gdb.error as e:
            lines.append(symbol.name + " = <" + str(e) + ">")
    return lines


def main():
    env = os.environ
    line = int(env["SMOL_DEVX_LINE"])
    frame = find_frame(int(env["SMOL_DEVX_TID"]), env["SMOL_DEVX_FILE"], line, int(env["SMOL_DEVX_NTH"]))
    if frame is None:
        answer(["! gone"])
        return
    frame.select()
    # The frame has moved on since the backtrace was taken (a failure's
    # caller, now in post_mortem): what it holds now is shown.
    sal = frame.find_sal()
    now = []
    if sal.symtab is not None and sal.line != line:
        now = ["(this frame is at %s:%d now)" % (sal.symtab.filename, sal.line)]
    if env["SMOL_DEVX_QUERY"] == "locals":
        answer(now + frame_locals(frame))
        return
    try:
        value = evaluate(env["SMOL_DEVX_EXPR"])
        answer([cut(render(value), MAX_VALUE, "(cut)")])
    except gdb.error as e:
        answer(["! " + " ".join(str(e).split())])


try:
    main()
except Exception as e:
    answer(["! " + type(e).__name__ + ": " + " ".join(str(e).split())])
