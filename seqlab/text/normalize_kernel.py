"""The batch kernel of :func:`seqlab.text.normalize.normalize_batch`: an Arrow string column normalized on
its UTF-8 buffer with NumPy, never building a ``str`` per row.

Rows go in groups that fit the CPU's L2 cache (:func:`normalize_arrow`): ASCII and the Arabic block
through two ``bytes.translate`` tables (:class:`Utf8Maps`), the rare other characters at their positions
only (through the plan's UTF-16 lookup table), deletions marked with a byte UTF-8 never holds and dropped by
one more translate, which carries the row offsets along; then URL removal and whitespace collapse on the
bytes. Only the rows holding a character whose normalized form is longer (a ligature) are handed back to
the caller's per-row function.

Below :mod:`seqlab.text.normalize` (which builds the tables and calls this): NumPy only, no seqlab import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["LUT_DELETE", "LUT_SLOW", "BatchPlan", "Utf8Maps", "may_hold_url", "normalize_arrow", "utf8_maps"]


class BatchPlan(Protocol):
    """What the kernel reads of a normalization plan (:class:`seqlab.text.normalize.Plan`)."""

    lut: np.ndarray  # (65536,) uint16: UTF-16 code unit -> code unit | LUT_DELETE | LUT_SLOW
    remove_urls: bool
    collapse_whitespace: bool
    utf8: Utf8Maps | None  # None: the switches need the per-row route


_LETTER_BYTE = np.zeros(256, dtype=bool)  # [A-Za-z] and [A-Za-z0-9+.-], URL_PATTERN's scheme, by byte
_LETTER_BYTE[[*range(0x41, 0x5B), *range(0x61, 0x7B)]] = True
_SCHEME_BYTE = _LETTER_BYTE.copy()
_SCHEME_BYTE[[*range(0x30, 0x3A), *b"+.-"]] = True

LUT_DELETE = 0xFFFF  # code unit meaning "drop this character"
LUT_SLOW = 0xFFFE  # "needs the str.translate path" (multi-character output, or U+FFFE/U+FFFF input)

_GONE = 0xFF  # never a byte of UTF-8: the batch route marks a byte it deletes with it
_MOVED = 0xFE  # never one either: a block character mapped to one with another lead byte (rare: ٱ ة ؤ ئ)


@dataclass(frozen=True)
class Utf8Maps:
    """A switch combination's char map as tables over UTF-8 bytes, for :func:`normalize_arrow`.

    ASCII and the Arabic block (U+0600..U+06FF: a lead byte 0xD8..0xDB and one continuation byte) are
    mapped densely with ``bytes.translate``; every other character the map touches is rare in Arabic text
    and is looked up in the plan's UTF-16 table at its positions only. A deleted byte is overwritten with
    ``_GONE`` and dropped by the translate that compacts the column.

    A block character is keyed by one byte, ``(lead << 6) + continuation`` wrapped to 8 bits, which is its
    offset in the block + 0x80 (mod 256): two NumPy operations, where the offset itself takes four.
    """

    ascii_table: bytes | None  # byte < 0x80 -> its map, bytes >= 0x80 unchanged (None: ASCII untouched)
    ascii_deleted: tuple[tuple[int, int], ...]  # the ASCII bytes the map deletes, as inclusive ranges
    cont_table: bytes | None  # block key -> new continuation byte, _GONE if deleted, _MOVED (None: untouched)
    block_deletes: bool  # some block character is deleted
    moved: np.ndarray | None  # (256, 2) uint8: block key -> new lead and continuation, for the _MOVED ones
    others: bool  # the map touches a character outside ASCII and the block
    url_re: re.Pattern[bytes]  # URL_PATTERN over UTF-8 where the space is the only whitespace

    @property
    def deleted_bytes(self) -> bytes:
        """What the compacting translate deletes: the mark and the deleted ASCII bytes."""
        return bytes([_GONE, *(b for lo, hi in self.ascii_deleted for b in range(lo, hi + 1))])


def utf8_maps(m: dict[str, str], sw: dict[str, bool], url_re: re.Pattern[bytes]) -> Utf8Maps | None:
    """The batch route's tables for char map ``m``, or None where they cannot express it: an ASCII or block
    character mapped out of its range, or URL removal without whitespace collapse (then a URL also ends at
    non-ASCII whitespace, which the batch's byte-level token search does not look for)."""
    if sw["remove_urls"] and not sw["collapse_whitespace"]:
        return None
    ascii_table, ascii_gone = bytearray(range(256)), []
    for c in range(0x80):
        out = m.get(chr(c), chr(c))
        if out == "":
            ascii_gone.append(c)
        elif len(out) == 1 and ord(out) < 0x80:
            ascii_table[c] = ord(out)
        else:
            return None
    unmapped = bytes(0x80 | (k & 0x3F) for k in range(256))  # a block key's own continuation byte
    cont_table, moved = bytearray(unmapped), np.zeros((256, 2), dtype=np.uint8)
    for offset in range(0x100):
        out = m.get(chr(0x600 + offset), chr(0x600 + offset))
        key = (offset + 0x80) & 0xFF
        if out == "":
            cont_table[key] = _GONE
        elif len(out) == 1 and 0x600 <= ord(out) < 0x700:
            cont_table[key] = 0x80 | (ord(out) & 0x3F)
            if ord(out) >> 6 != (0x600 + offset) >> 6:
                cont_table[key] = _MOVED
                moved[key] = list(out.encode("utf-8"))
        else:
            return None
    ranges: list[tuple[int, int]] = []
    for b in ascii_gone:
        if ranges and ranges[-1][1] == b - 1:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((b, b))
    return Utf8Maps(
        ascii_table=None if ascii_table == bytes(range(256)) else bytes(ascii_table),
        ascii_deleted=tuple(ranges),
        cont_table=None if cont_table == unmapped else bytes(cont_table),
        block_deletes=_GONE in cont_table,
        moved=moved if _MOVED in cont_table else None,
        others=any(not (ord(c) < 0x80 or 0x600 <= ord(c) < 0x700) for c in m),
        url_re=url_re,
    )


def may_hold_url(data: bytes) -> bool:
    """False when ``data`` has no ``/`` and no ``w``/``W``, so neither ``://`` nor ``ww.``: three memchr
    scans, where ``b"://" in data`` is a byte-by-byte one (4x slower on a 2000-character Arabic text)."""
    return b"/" in data or b"w" in data or b"W" in data


_CHUNK_BYTES = 1 << 18  # rows are normalized in groups of about this much UTF-8, so a group stays in cache


def normalize_arrow(array: Any, plan: BatchPlan, per_row: Callable[[Any], Any]) -> list[Any]:
    """One Arrow string array normalized on its UTF-8 buffer, as arrays of consecutive rows (the chunks of
    the result: no copy joins them); rows it cannot take go one by one.

    The rows are taken in groups of about ``_CHUNK_BYTES``, each through three vectorized steps over its
    bytes (:func:`_normalize_utf8`). No ``str`` is built for the column. A row holding a character whose
    normalized form is longer in UTF-8 (a ligature) is redone by ``per_row`` (``normalize`` on each row of
    an Arrow array it is given), as is the whole array when :class:`Utf8Maps` cannot express the switches.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(array)
    large = pa.types.is_large_string(array.type)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[array.offset : array.offset + n + 1].astype(np.int64)
    data = array.buffers()[2]
    if plan.utf8 is None or data is None or not n or offsets[-1] == offsets[0]:
        return [per_row(array)]
    raw = np.frombuffer(data, dtype=np.uint8)
    cuts = np.unique(np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], _CHUNK_BYTES)))
    cuts = cuts[cuts < n].tolist()
    parts = []
    for first, last in zip(cuts, [*cuts[1:], n], strict=True):
        rows = offsets[first : last + 1]
        body, rows_after, slow = _normalize_utf8(raw[rows[0] : rows[-1]], rows - rows[0], plan)
        index = pa.py_buffer(rows_after.astype(np.int64 if large else np.int32))
        part = pa.Array.from_buffers(array.type, last - first, [None, index, pa.py_buffer(body)])
        if len(slow):  # rows whose normalized form is longer than they are: the general route
            mask = np.zeros(last - first, dtype=bool)
            mask[slow] = True
            redone = per_row(array.slice(first, last - first).take(pa.array(slow)))
            part = pc.replace_with_mask(part, pa.array(mask), redone)
        if array.null_count:
            part = pc.if_else(array.slice(first, last - first).is_valid(), part, pa.scalar(None, array.type))
        parts.append(part)
    return parts


def _normalize_utf8(
    raw: np.ndarray, offsets: np.ndarray, plan: BatchPlan
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Rows of UTF-8 (``raw``, rows at ``offsets`` from 0) normalized: (bytes, their offsets, rows to redo).

    The character maps (:func:`_map_utf8`), then URL removal (:func:`_url_spans`) and whitespace collapse
    with each row's ends stripped (:func:`_finish_utf8`); each of the two compacts the bytes and carries the
    row offsets along (a per-row count of the deleted bytes).
    """
    assert plan.utf8 is not None
    body, offsets, slow = _map_utf8(raw, offsets, plan.utf8, plan.lut)
    body, offsets = _finish_utf8(body, offsets, plan, plan.utf8.url_re)
    return body, offsets, slow


def _offsets_after(dropped: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row offsets once the bytes flagged in ``dropped`` (bool, one per byte) are gone."""
    lengths = np.diff(offsets)
    full = np.flatnonzero(lengths)  # reduceat gives an empty row its next byte, not 0: sum full rows only
    if len(full):  # a 16-bit sum where no row can overflow it: 2x faster than 32 bits
        longest = lengths.max()
        wide = np.uint16 if longest < 1 << 16 else np.int32 if longest < 1 << 31 else np.int64
        lengths[full] -= np.add.reduceat(dropped.view(np.uint8), offsets[full], dtype=wide)
    new = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(lengths, out=new[1:])
    return new


def _map_utf8(
    raw: np.ndarray, offsets: np.ndarray, maps: Utf8Maps, lut: np.ndarray
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The character maps over UTF-8 ``raw`` (rows at ``offsets``): (bytes, new offsets, rows to redo)."""
    buffer = bytearray(raw)  # written in place below through `out`, translated without another copy
    out = np.frombuffer(buffer, dtype=np.uint8)  # (size,)
    lead = (raw & 0xFC) == 0xD8  # U+0600..U+06FF: lead 0xD8..0xDB, then one continuation byte
    if maps.cont_table is not None and lead.any():
        keys = bytearray(len(raw))  # the block key of the character led at each byte (see Utf8Maps)
        key = np.frombuffer(keys, dtype=np.uint8)
        np.multiply(raw, np.uint8(64), out=key)  # (a shift is 20x slower than this multiply in NumPy)
        key[:-1] += raw[1:]
        cont_bytes = keys.translate(maps.cont_table)
        cont = np.frombuffer(cont_bytes, dtype=np.uint8)
        flag = lead.view(np.uint8)
        # The new continuation byte after each lead (uint8 arithmetic wraps, so this is exact; 10x faster
        # than np.copyto(..., where=)). A deleted character's continuation becomes _GONE here ...
        out[1:] += flag[:-1] * (cont[:-1] - out[1:])
        if maps.moved is not None and _MOVED in cont_bytes:  # (one memchr: ٱ is rare)
            moves = lead & (cont == _MOVED)
            if moves.any():
                at = np.flatnonzero(moves)
                out[at], out[at + 1] = maps.moved[key[at]].T
        if maps.block_deletes:  # ... and its lead here
            out |= np.negative((lead & (cont == _GONE)).view(np.uint8))
    slow_at = np.empty(0, dtype=np.int64)
    if maps.others:  # 2- and 3-byte leads outside the block (no map touches an astral character)
        multi = (raw - 0xC2) < 0x2E  # 0xC2 <= raw < 0xF0 (uint8 wrapping): every block lead, and the others
        # (counting them beats flatnonzero over a mask that is nearly all False)
        if np.count_nonzero(multi) > np.count_nonzero(lead):
            slow_at = _map_sparse(np.flatnonzero(multi & ~lead), raw, out, lut)
    dropped = out == _GONE
    for lo, hi in maps.ascii_deleted:
        dropped |= (out - lo) <= hi - lo  # lo <= out <= hi, with uint8 wrapping
    body = bytes(buffer.translate(maps.ascii_table, maps.deleted_bytes))
    slow = np.unique(np.searchsorted(offsets, slow_at, side="right") - 1) if len(slow_at) else slow_at
    return body, _offsets_after(dropped, offsets), slow


def _map_sparse(at: np.ndarray, raw: np.ndarray, out: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map the 2- and 3-byte characters led at ``at`` through the UTF-16 table, in place in ``out``;
    returns the positions of the characters whose output is longer (their rows are redone)."""
    b0, b1, b2 = (raw.take(at + i, mode="clip").astype(np.int64) for i in range(3))  # clip: a truncated end
    two = b0 < 0xE0
    code = np.where(
        two, ((b0 & 0x1F) << 6) | (b1 & 0x3F), ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F)
    )
    new = lut[code].astype(np.int64)
    hit = new != code
    at, new, width = at[hit], new[hit], np.where(two[hit], 2, 3)
    new_width = np.where(new == LUT_DELETE, 0, np.where(new < 0x80, 1, np.where(new < 0x800, 2, 3)))
    slow = (new == LUT_SLOW) | (new_width > width)
    slow_at = at[slow]
    at, new, width, new_width = at[~slow], new[~slow], width[~slow], new_width[~slow]
    encoded = (  # byte i of new's UTF-8 (meaningful for i < new_width), then _GONE up to the old width
        np.where(new_width == 1, new, np.where(new_width == 2, 0xC0 | (new >> 6), 0xE0 | (new >> 12))),
        np.where(new_width == 2, 0x80 | (new & 0x3F), 0x80 | ((new >> 6) & 0x3F)),
        0x80 | (new & 0x3F),
    )
    for i, value in enumerate(encoded):
        inside = i < width  # the character has a byte i
        out[at[inside] + i] = np.where(i < new_width, value, _GONE)[inside]
    return slow_at


def _finish_utf8(
    body: bytes, offsets: np.ndarray, plan: BatchPlan, url_re: re.Pattern[bytes]
) -> tuple[bytes, np.ndarray]:
    """URL removal and whitespace collapse on a batch's mapped UTF-8 (where the space is the only whitespace
    left when collapse is on, which URL removal on this route requires: see :func:`utf8_maps`).

    A URL's bytes count as spaces: the collapse drops them with the spaces around them, which is what
    deleting them and then collapsing gives, since a URL runs to the next space or the end of its row.
    A space goes when a space or its row's start comes right before it, and so does the one that a row's
    trailing run leaves.
    """
    if not plan.collapse_whitespace:
        return body, offsets
    data = np.frombuffer(body, dtype=np.uint8)
    space = data == 0x20
    if plan.remove_urls:
        urls = _url_spans(body, data, space, offsets, url_re)
        if urls is not None:
            cut, width = urls
            space[np.repeat(cut - (np.cumsum(width) - width), width) + np.arange(width.sum())] = True
            data = data.copy()
            data[cut] = 0x20  # a URL's first byte is kept where it is the first space of its run
            body = data.tobytes()
    if not space.any():
        return body, offsets
    after_space = np.empty(len(data), dtype=bool)
    after_space[0] = True
    after_space[1:] = space[:-1]
    full = offsets[1:] > offsets[:-1]
    after_space[offsets[:-1][full]] = True  # a row's start counts as a space before it
    drop = space & after_space
    ends = offsets[1:][full]
    starts = offsets[:-1][full]
    for s, e in zip(starts[space[ends - 1]].tolist(), ends[space[ends - 1]].tolist(), strict=True):
        text = np.flatnonzero(~space[s:e])  # a row ending in spaces: drop the first of them too
        drop[s + (text[-1] + 1 if len(text) else 0)] = True
    return _without(body, drop), _offsets_after(drop, offsets)


def _url_spans(
    body: bytes, data: np.ndarray, space: np.ndarray, offsets: np.ndarray, url_re: re.Pattern[bytes]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the URLs of the rows are: (first byte, length) of each, or None if there is none.

    Only the tokens around a ``://`` or ``w.`` can hold one, and a URL takes a token's tail. Where the
    regex would match at the token's first byte NumPy says so; the other tokens are joined by spaces into
    one string for a single regex pass, and what it leaves of each says where its URL starts.
    """
    if not may_hold_url(body):
        return None
    size = len(data)
    colon = np.flatnonzero(data[: size - 2] == 0x3A)  # ":" is rare in Arabic text, "." is not: look for
    colon = colon[(data[colon + 1] == 0x2F) & (data[colon + 2] == 0x2F)]  # "://" from ":" and "w." whole
    www = np.flatnonzero(((data[:-1] | 0x20) == 0x77) & (data[1:] == 0x2E))
    at = np.sort(np.concatenate([colon, www]))  # (n_needles,): each ":" of "://", each "w" of "w."
    if not len(at):  # (``b"://" in body`` would be a byte-by-byte scan: 20x slower than this)
        return None
    stops = np.concatenate([[-1], np.flatnonzero(space), [size]])
    after = np.searchsorted(stops, at)  # stops[after - 1] < at < stops[after]
    row = np.searchsorted(offsets, at, side="right") - 1
    start = np.maximum(stops[after - 1] + 1, offsets[row])
    end = np.minimum(stops[after], offsets[row + 1])
    first = np.ones(len(at), dtype=bool)
    first[1:] = start[1:] != start[:-1]  # one token per start, however many needles it holds
    at, start, end = at[first], start[first], end[first]
    cut = start.copy()  # (n_tokens,): where the token's URL starts (end: none)
    # Nearly every URL token starts with its URL ("https://…", "www.…"): the regex matches at the token's
    # first byte, which NumPy can check. The other tokens go through the regex, joined into one string.
    into = at - start  # the needle's place in the token
    reach = min(int(into.max()), 32) + 1  # the bytes that decide: up to the needle, at most a 32-byte scheme
    head = data.take(np.minimum(start[:, None] + np.arange(max(reach, 2)), size - 1))  # (n_tokens, reach)
    scheme_end = np.where(~_SCHEME_BYTE[head[:, 1:reach]], np.arange(1, reach), reach).min(
        axis=1, initial=reach
    )
    at_start = np.where(
        data[at] == 0x3A,
        (into >= 1) & (into <= np.minimum(scheme_end, 32)) & _LETTER_BYTE[head[:, 0]],  # [A-Za-z]...{0,31}://
        (into == 2) & ((head[:, 0] | 0x20) == 0x77) & ((head[:, 1] | 0x20) == 0x77),  # [Ww]{3}\.
    )
    other = np.flatnonzero(~at_start)
    if len(other):
        tokens = [body[s:e] for s, e in zip(start[other].tolist(), end[other].tolist(), strict=True)]
        left = url_re.sub(b"", b" ".join(tokens)).split(b" ")
        cut[other] += np.fromiter(map(len, left), dtype=np.int64, count=len(tokens))
    width = end - cut  # (n_tokens,): the URL's bytes, 0 for a token without one
    if not width.any():
        return None
    return cut[width > 0], width[width > 0]


def _without(body: bytes, drop: np.ndarray) -> bytes:
    """``body`` less the bytes flagged in ``drop``: the slices between the dropped runs joined where there
    are few runs (a collapse usually drops a few spaces and the blanked URLs), else one translate."""
    dropped = np.count_nonzero(drop)
    if not dropped:
        return body
    if dropped > len(body) >> 8:  # a slice costs about what translating 200 bytes does
        marked = bytearray(body)  # marked in place through a view: 2x faster than a new array + tobytes
        view = np.frombuffer(marked, dtype=np.uint8)
        view |= np.negative(drop.view(np.uint8))
        return bytes(marked.translate(None, bytes([_GONE])))
    edges = (np.flatnonzero(drop[1:] != drop[:-1]) + 1).tolist()  # where a run of dropped bytes starts/ends
    edges = [0] * bool(drop[0]) + edges + [len(body)] * bool(drop[-1])  # (2 * n_runs,): start, end, ...
    starts, ends = [0, *edges[1::2]], [*edges[0::2], len(body)]
    return b"".join([body[a:b] for a, b in zip(starts, ends, strict=True)])
