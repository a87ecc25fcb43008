#!/usr/bin/env python3
"""Bars of one colour in a PNG screenshot, for the portal's chart test.

    png_bars.py FILE RRGGBB

Prints one line per vertical bar of that colour (within a small tolerance
for colour management), left to right: "x width height top", in pixels.
A bar is a run of adjacent columns holding the colour; its height is the
number of rows of its middle column holding it.  Decodes 8-bit RGB/RGBA
PNGs with the standard library alone (zlib), as headless Chromium writes
them.
"""
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("not a PNG: " + path)
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                sys.exit("unsupported PNG (depth %d, colour type %d, interlace %d)" % (depth, ctype, interlace))
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def main():
    path, colour = sys.argv[1], sys.argv[2]
    want = tuple(int(colour[k:k + 2], 16) for k in (0, 2, 4))
    width, height, bpp, rows = read_png(path)

    def hit(x, y):
        px = rows[y][x * bpp:x * bpp + 3]
        return all(abs(px[k] - want[k]) <= 12 for k in range(3))

    columns = [[y for y in range(height) if hit(x, y)] for x in range(width)]
    x = 0
    while x < width:
        if not columns[x]:
            x += 1
            continue
        start = x
        while x < width and columns[x]:
            x += 1
        middle = columns[(start + x - 1) // 2]
        print(start, x - start, len(middle), middle[0])


main()
