#!/usr/bin/env python3
# fuzz/mkseeds.py: writes the A3 seeds of fuzz_reply and fuzz_record into
# corpus/<target>/, to the input layouts given at the top of fuzz_reply.c
# and fuzz_record.c.  Run it after changing a layout, then
# `make -C fuzz regress`.  Not written here: fuzz_record's seeds converted
# from A2 inputs (adjacent, code-in-path, escapes, ...) and regressions/.

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, seeds):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)


# fuzz_reply: N, the bitmap of the R groups, then RESP

def hdr(n, ops):
    """ops: one letter per group; R sets its bit (P, D: the bit is clear,
    and the harness makes even groups P, odd ones D)"""
    m = bytearray(min((n + 7) // 8, 16))
    for i, c in enumerate(ops):
        if c == 'R' and i < 128:
            m[i // 8] |= 1 << (i % 8)
    return bytes([n]) + bytes(m)


def bulk(b):
    return b'$%d\r\n' % len(b) + b + b'\r\n'


def num(v):
    return b':%d\r\n' % v


def arr(*els):
    return b'*%d\r\n' % len(els) + b''.join(els)


def reply(dec, *triplets):
    return arr(bulk(dec), *[num(x) for t in triplets for x in t])


R1 = hdr(1, 'R')

REPLY = {
    # the shapes the function returns
    'allow': R1 + reply(b'\x01'),
    'stopped': R1 + reply(b'\x02'),
    'rate-agency': R1 + reply(b'\x03', (1, 1, 1500)),
    'rate-purpose': R1 + reply(b'\x03', (1, 2, 250000)),
    'append': hdr(1, 'P') + reply(b'\x00'),
    'denial': hdr(2, 'PD') + reply(b'\x00\x00'),
    'mixed': hdr(4, 'RDRD') + reply(b'\x01\x00\x03\x00', (3, 2, 99),
                                    (1, 11, 5)),
    'rule-fired': R1 + reply(b'\x01', (1, 11, 12)),
    'rule-on-denial': hdr(2, 'RD') + reply(b'\x02\x00', (2, 12, 3)),
    'rule-max': R1 + reply(b'\x01', (1, 74, 0)),
    'duplicate-rule': R1 + reply(b'\x01', (1, 11, 5), (1, 11, 5)),
    'no-groups': hdr(0, '') + reply(b''),
    'full-128': hdr(128, 'R' * 128) + reply(b'\x01' * 127 + b'\x03',
                                            (128, 1, 7)),
    'two-replies': R1 + reply(b'\x01') + reply(b'\x03', (1, 2, 9)),

    # and what it never returns
    'rule-over': R1 + reply(b'\x01', (1, 75, 1)),
    'rule-ten': R1 + reply(b'\x01', (1, 10, 1)),
    'code-zero': R1 + reply(b'\x01', (1, 0, 1)),
    'code-three': R1 + reply(b'\x03', (1, 3, 1)),
    'over-128': hdr(129, 'R' * 129) + reply(b'\x01' * 129),
    'wrong-length-short': hdr(2, 'RR') + reply(b'\x01'),
    'wrong-length-long': R1 + reply(b'\x01\x01'),
    'duplicate-wait': R1 + reply(b'\x03', (1, 1, 5), (1, 2, 7)),
    'missing-wait': R1 + reply(b'\x03'),
    'missing-wait-second': hdr(2, 'RR') + reply(b'\x03\x03', (1, 1, 5)),
    'wait-on-allow': R1 + reply(b'\x01', (1, 1, 5)),
    'wait-on-append': hdr(2, 'RP') + reply(b'\x01\x00', (2, 1, 5)),
    'wait-zero': R1 + reply(b'\x03', (1, 1, 0)),
    'wait-negative': R1 + reply(b'\x03', (1, 1, -5)),
    'rule-negative': R1 + reply(b'\x01', (1, 11, -1)),
    'group-zero': R1 + reply(b'\x01', (0, 11, 1)),
    'group-over': R1 + reply(b'\x01', (2, 11, 1)),
    'group-negative': R1 + reply(b'\x01', (-1, 11, 1)),
    'int-min': R1 + reply(b'\x03', (1, 1, -9223372036854775808)),
    'int-max': R1 + reply(b'\x03', (9223372036854775807, 1, 1),
                          (1, 1, 9223372036854775807)),
    'decision-four': R1 + reply(b'\x04'),
    'decision-zero-decide': R1 + reply(b'\x00'),
    'decision-one-append': hdr(1, 'P') + reply(b'\x01'),
    'decision-ascii': R1 + reply(b'1'),
    'status-decisions': R1 + b'*1\r\n+\x01\r\n',
    'integer-decisions': R1 + arr(num(1)),
    'nil-decisions': R1 + b'*1\r\n$-1\r\n',
    'nil-array': R1 + b'*-1\r\n',
    'nil-in-triplet': R1 + arr(bulk(b'\x03'), num(1), b'$-1\r\n', num(5)),
    'nested': R1 + arr(arr(bulk(b'\x01'))),
    'nested-triplet': R1 + arr(bulk(b'\x03'), num(1), num(1), arr(num(5))),
    'string-in-triplet': R1 + arr(bulk(b'\x03'), num(1), bulk(b'1'),
                                  num(5)),
    'short-triplet': R1 + arr(bulk(b'\x03'), num(1), num(1)),
    'empty-array': R1 + b'*0\r\n',
    'bulk': R1 + bulk(b'\x01'),
    'error': R1 + b'-ERR Function not found\r\n',
    'error-script': hdr(2, 'RP') + b'-ERR juki: bad group\r\n',
    'truncated': R1 + b'*4\r\n$1\r\n\x03\r\n:1\r\n:1\r\n',
    'a2-allow': R1 + b'*1\r\n:0\r\n',
}


# fuzz_record: flags, code, URI, then the steps

def head(flags=0, code=b'', uri=b'/v1/residents/'):
    return bytes([flags | len(code)]) + code + bytes([len(uri)]) + uri


def clock(sec=1700000000, ms=123):
    return struct.pack('>IH', sec, ms)


def s8(x):
    return bytes([len(x)]) + x


def rate(interval=0, burst=0):
    return struct.pack('>II', interval, burst)


def step_w(writer=b'\x01' * 8, kid=b'\x02' * 8, b=0, node=b'gw-osaka-2'):
    return b'\x00' + clock() + writer + kid + bytes([b]) + s8(node)


def step_a(reason, f, op=b'insider1', purpose=b'P1', method=b'GET',
           ar=(0, 0), pr=(0, 0), cert=b'0123456789abcdef',
           subj=b'fedcba9876543210'):
    """f: bits 0-1 agency (0 none), 2 purpose, 3 cert, 4 subject, 5 upper
    case hex"""
    return (b'\x01' + clock() + bytes([reason, f]) + rate(*ar) + rate(*pr)
            + s8(op) + s8(purpose) + s8(method) + cert + subj)


def step_c(outcome, f, awriter=b'\x00' * 8, aseq=0, status=200, err=0,
           sent=0, states=None):
    """f: bit 7 completes the last A, else agency f % 3"""
    b = (b'\x02' + clock() + bytes([outcome, f]) + awriter
         + struct.pack('>QHHq', aseq, status, err, sent))
    if states is None:
        return b + b'\x00'
    b += bytes([0x80 | len(states)])
    for st, rt in states:
        b += struct.pack('>HI', st, rt)
    return b


def step_s(cause, second=1700000000, recorded=5, suppressed=2):
    return (b'\x03' + clock() + bytes([cause])
            + struct.pack('>III', second, recorded, suppressed))


def step_fail(x):
    """bit 0: no Redis; bit 1: the call is full"""
    return b'\x04' + bytes([x])


A_ALL = 0x1d        # agency 1, purpose, cert, subject

RECORD = {
    'a-allow-rates': head(0, b'12345678901', b'/v1/residents/12345678901')
    + step_a(0, A_ALL, ar=(1000, 2), pr=(1000000, 0)),
    'a-allow-agency-rate-only': head() + step_a(0, 0x1e, ar=(60000000, 9)),
    'a-allow-longest-limits': head()
    + step_a(0, A_ALL, ar=(4294967295, 4294967295),
             pr=(4294967295, 4294967295)),
    'a-allow-no-limits': head()
    + step_a(0, 0x17, cert=b'\xff' * 16, subj=b'\x00' * 16),
    'a-allow-no-purpose': head() + step_a(0, 0x01),
    'a-allow-no-agency': head() + step_a(0, 0x04),
    'a-denials': head() + b''.join(step_a(r, 0x0b) for r in range(1, 8)),
    'a-no-agency-refusals': head() + step_a(1, 0x08) + step_a(2, 0x00)
    + step_a(7, 0x10),
    'a-unavailable': head() + step_a(10, 0x05),
    'a-upper-hex': head() + step_a(0, 0x3d),
    'a-long-values': head(0, b'', b'/' + b'x' * 200)
    + step_a(0, A_ALL, op=b'o' * 64, purpose=b'p' * 64, method=b'M' * 32),
    'a-empty-values-null': head(0x80, b'', b'')
    + step_a(1, 0x00, op=b'', purpose=b'', method=b''),
    'a-empty-values': head(0, b'', b'')
    + step_a(6, 0x02, op=b'', purpose=b'', method=b''),
    'c-outcomes': head() + step_c(0, 1, states=[(200, 5)]) + step_c(1, 2)
    + step_c(2, 0, err=429, status=200),
    'c-after-a': head() + step_a(0, A_ALL)
    + step_c(0, 0x80, sent=12345,
             states=[(502, 0xffffffff), (0, 9), (200, 30)]),
    'c-negative-sent': head() + step_c(0, 1, sent=-5, states=[]),
    'c-big': head() + step_c(2, 2, aseq=2**64 - 1, status=65535, err=65535,
                             sent=2**63 - 1, states=[(599, 0xfffffffe)] * 7),
    's-causes': head() + step_s(0) + step_s(1, 0, 0, 1)
    + step_s(2, 2**32 - 1, 2**32 - 1, 2**32 - 1),
    'w-new-writers': head() + step_w() + step_a(0, A_ALL)
    + step_w(b'\xff' * 8, b'\xab' * 8, 3, b'n' * 64) + step_s(0),
    'w-node-too-long': head() + step_w(node=b'n' * 65) + step_a(0, A_ALL),
    'w-empty-node': head(0x80) + step_w(node=b''),
    'fail-pick': head() + step_fail(1) + step_a(0, A_ALL) + step_fail(1)
    + step_c(0, 1) + step_fail(1) + step_s(0) + step_a(1, 0),
    'fail-add': head() + step_fail(2) + step_a(0, A_ALL) + step_fail(2)
    + step_c(0, 1) + step_fail(2) + step_s(0) + step_fail(2) + step_w()
    + step_a(0, A_ALL),
    'seq-max': head(0x40)
    + b''.join(step_a(0, A_ALL) + step_c(0, 0x80) for _ in range(16)),
    'seq-max-denials': head(0x40)
    + b''.join(step_a(3, 0x01) for _ in range(32)),
    'varint-boundaries': head(0, b'', b'/' + b'v' * 127)
    + step_s(1, 16384, 127, 128) + step_s(2, 16383, 2**21, 2**28)
    + step_c(0, 1, aseq=128, status=128, sent=16384, states=[(200, 126)]),
}

# regressions/fuzz_record/, for reference (not written):
#   chain-null-memcpy    head(0x80, b'', b'')
#                        + step_a(1, 0x00, op=b'', purpose=b'', method=b'')
#   reason-stopped       head() + step_a(8, 0x05)
#   reason-rate-limited  head() + step_a(9, 0x05)

if __name__ == '__main__':
    write('fuzz_reply', REPLY)
    write('fuzz_record', RECORD)
