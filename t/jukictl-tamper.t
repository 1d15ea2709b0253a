#!/usr/bin/perl

# jukictl verify against tampered A3 trails (docs/audit.md,
# "Verification"): the trail is written by the Perl reference
# (t/jukictl/JukiRef.pm), not by the module or jukictl, then altered the
# way someone with write access to Redis but without the audit key could:
# an edited field, a deleted record, two records swapped, a record moved
# to another list, forged records, decisions flipped, an unknown key,
# trailing bytes, non-minimal varints, unknown types, clocks off.  Each
# must exit 1 naming the break; a Redis-decided audit record without its
# completion is "unconfirmed", not a break.
#
# Env: TEST_NGINX_REDIS_PORT (required), TEST_NGINX_REDIS_HOST
# (127.0.0.1), TEST_JUKICTL_TAMPER_DB (default 12; it is flushed),
# JUKICTL (default jukictl/jukictl).

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use POSIX ();
use Test::More;

use lib dirname(__FILE__) . '/jukictl';
use JukiRef;

my $port = $ENV{TEST_NGINX_REDIS_PORT};
plan skip_all => 'TEST_NGINX_REDIS_PORT is not set' unless $port;

my $host = $ENV{TEST_NGINX_REDIS_HOST} || '127.0.0.1';
my $db = $ENV{TEST_JUKICTL_TAMPER_DB} // 12;
my $bin = $ENV{JUKICTL} || 'jukictl/jukictl';
-x $bin or BAIL_OUT("$bin is not built");

my $dir = tempdir(CLEANUP => 1);

sub write_file {
    my ($name, $data) = @_;
    open my $f, '>', "$dir/$name" or die $!;
    binmode $f;
    print $f $data;
    close $f;
    return "$dir/$name";
}

sub raw_key { join '', map { chr(($_[0] * 37 + $_ * 11) % 256) } 1 .. $_[1] }

my $path_a = write_file('a.key', raw_key(1, 32));
my $path_b = write_file('b.key', raw_key(2, 40));
my $ka = JukiRef::key(raw_key(1, 32));
my $kb = JukiRef::key(raw_key(2, 40));

my $redis = JukiRef->connect($host, $port, $db);

sub jk {
    my (@args) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "$host:$port";
        $ENV{JUKI_REDIS_DB} = $db;
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER);
        JukiRef::role_env(@args);
        open STDIN, '<', '/dev/null' or die;
        open STDOUT, '>', "$dir/out" or die;
        open STDERR, '>', "$dir/err" or die;
        exec $bin, @args or exit 127;
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    local $/;
    open my $o, '<', "$dir/out" or die;
    open my $e, '<', "$dir/err" or die;
    return ($rc, scalar(<$o> // ''), scalar(<$e> // ''));
}

my $now = int(time() * 1000);
my @agencies = (
    [ 'city-a', 'municipality', [ 'tax.local' ] ],
    [ 'pref.b', 'prefecture', [ 'tax.local', 'election.roll' ] ],
);
my @codes = ('', '123456789018', '234567890123');

sub writers { return map { JukiRef::writer(sprintf('%016x', 0xab00 + $_),
                                           $ka) } 0 .. 2 }

sub build {
    my (%o) = @_;
    srand(7);
    my @w = writers();
    return (JukiRef::trail(requests => 120, writers => \@w,
                           agencies => \@agencies, codes => \@codes,
                           summaries => 1, start_ms => $now - 600000, %o),
            \@w);
}

# the trail into a flushed database; returns the records, each with its
# index in its list
sub load {
    my ($recs) = @_;
    $redis->cmd('FLUSHDB');
    my %n;
    $_->{idx} = $n{ $_->{list} }++ for @$recs;
    $redis->load($recs);
    return $recs;
}

sub verify { return jk('verify', '--key', $path_a, @_) }

# one tamper: rc 1 and the break named
sub broken {
    my ($name, $re, @args) = @_;
    my ($rc, $out, $err) = verify(@args);
    is($rc, 1, "$name: verify exits 1") or diag "$out$err";
    like($err, $re, "$name: the break is named") or diag $err;
    unlike($out, qr/^ok:/m, "$name: not reported ok");
}

sub first {
    my ($recs, $cond) = @_;
    for (@$recs) { return $_ if $cond->($_) }
    die 'no such record';
}

my ($recs, $w) = build();
my ($rc, $out, $err);

# --- intact ---

load($recs);
($rc, $out, $err) = verify();
is($rc, 0, 'intact: verify exits 0') or diag $err;
my $nrec = @$recs;
like($out, qr/^ok: $nrec records \(3 writer, \d+ audit, \d+ completion, (?#
              )\d+ summary, 0 control\) in 3 lists, 3 writers$/m,
     'intact: counted');
is($err, '', 'intact: nothing on stderr');

my $ra = first($recs, sub { $_[0]{type} eq 'A' && $_[0]{decision} eq 'allow'
                            && $_[0]{idx} > 2 });
my $ga = first($recs, sub { $_[0]{type} eq 'A'
                            && $_[0]{decision} eq 'deny:bad_request' });
my $cc = first($recs, sub { $_[0]{type} eq 'C' });

# --- edit: one byte of an audit record's uri ---

load($recs);
(my $e = $ra->{el}) =~ s{/v1/residents/}{/v1/residentz/};
$redis->cmd('LSET', $ra->{list}, $ra->{idx}, $e);
broken('edit', qr/seq $ra->{seq}: bad mac/);

# --- delete: a record in the middle of a chain ---

load($recs);
$redis->cmd('LSET', $ra->{list}, $ra->{idx}, 'DELETED');
$redis->cmd('LREM', $ra->{list}, 1, 'DELETED');
broken('delete', qr/writer $ra->{writer} seq \d+: seq gap: $ra->{seq}\.\.(?#
                    )$ra->{seq} missing/);

# --- swap: two adjacent records of one writer in one list ---

{
    my ($x, $y);
    for my $i (0 .. $#$recs - 1) {
        for my $j ($i + 1 .. $#$recs) {
            next unless $recs->[$j]{list} eq $recs->[$i]{list}
                && $recs->[$j]{writer} eq $recs->[$i]{writer};
            ($x, $y) = ($recs->[$i], $recs->[$j]) if $recs->[$i]{seq} > 0;
            last;
        }
        last if $x;
    }
    load($recs);
    $redis->cmd('LSET', $x->{list}, $x->{idx}, $y->{el});
    $redis->cmd('LSET', $y->{list}, $y->{idx}, $x->{el});
    broken('swap', qr/out of order in its list/);
}

# --- moved: an audit record into another agency's list ---

load($recs);
{
    my $other = $ra->{list} eq 'juki:{city-a}:audit' ? 'juki:{pref.b}:audit'
                                                     : 'juki:{city-a}:audit';
    $redis->cmd('LSET', $ra->{list}, $ra->{idx}, 'MOVED');
    $redis->cmd('LREM', $ra->{list}, 1, 'MOVED');
    $redis->cmd('RPUSH', $other, $ra->{el});
    broken('moved', qr/seq $ra->{seq}: bad mac/);
}

# --- forged: a record appended with a made-up mac ---

load($recs);
{
    my $last = (grep { $_->{writer} eq $w->[0]{name} } @$recs)[-1];
    my %cp = %{ $w->[0] };
    my $f = JukiRef::record(\%cp, 'A', agency => 'city-a', ts => $now,
                            decision => 'deny:bad_request', uri => '/x');
    my $el = $f->{el};
    substr($el, -17, 16) = "\x55" x 16;
    $redis->cmd('RPUSH', 'juki:{city-a}:audit', $el);
    broken('forged (bad mac)', qr/seq @{[ $last->{seq} + 1 ]}: bad mac/);

    # a whole forged writer, signed with a key verify does not know
    load($recs);
    my $fw = JukiRef::writer('00000000deadbeef', $kb);
    $redis->cmd('RPUSH', 'juki:{_}:audit',
                JukiRef::record($fw, 'W', ts => $now)->{el});
    $redis->cmd('RPUSH', 'juki:{city-a}:audit',
                JukiRef::record($fw, 'A', agency => 'city-a', ts => $now,
                                decision => 'allow', gdecision => 0)->{el});
    broken('unknown kid', qr/writer 00000000deadbeef seq 0: unknown kid (?#
                             )$kb->{kid}/);
    ($rc, $out, $err) = verify('--key', $path_b);
    is($rc, 0, 'unknown kid: with both keys, the chain verifies')
        or diag $err;
    like($out, qr/^unconfirmed: 1 audit/m,
         'unknown kid: with both keys, its allow is unconfirmed');

    # a forged writer with no W record at all
    load($recs);
    my $nw = JukiRef::writer('00000000cafef00d', $ka);
    $nw->{seq} = 0;
    $redis->cmd('RPUSH', 'juki:{city-a}:audit',
                JukiRef::record($nw, 'A', agency => 'city-a', ts => $now,
                                decision => 'deny:bad_request')->{el});
    broken('no W record', qr/writer 00000000cafef00d seq 1: no W record/);

    # an agency list's trimmed counter says nothing about W records (they
    # live only in juki:{_}:audit): the forged writer is still a break
    $redis->cmd('SET', 'juki:{city-a}:trimmed', 5);
    broken('no W record, an agency list trimmed',
           qr/writer 00000000cafef00d seq 1: no W record/);
}

# --- a summary of nothing: S with suppressed 0, even with a valid mac ---

load($recs);
{
    my $sw = JukiRef::writer('00000000005c0000', $ka);
    $redis->cmd('RPUSH', 'juki:{_}:audit',
                JukiRef::record($sw, 'W', ts => $now)->{el});
    $redis->cmd('RPUSH', 'juki:{_}:audit',
                JukiRef::record($sw, 'S', ts => $now, cause => 17,
                                second => int($now / 1000), recorded => 1,
                                suppressed => 0)->{el});
    broken('S suppressed 0', qr/writer 00000000005c0000 seq 1: S record (?#
                                )with suppressed 0/);
}

# --- decision flips ---

load($recs);
{
    my $el = $ra->{el};
    substr($el, -1, 1) = chr(2);
    $redis->cmd('LSET', $ra->{list}, $ra->{idx}, $el);
    broken('Redis decision flipped', qr/seq $ra->{seq}: decision flip: (?#
           )decision deny:stopped, its completion \(seq \d+\) says allow/);

    load($recs);
    $el = $ga->{el};
    substr($el, -1, 1) = chr(1);
    $redis->cmd('LSET', $ga->{list}, $ga->{idx}, $el);
    broken('gateway decision flipped', qr/seq $ga->{seq}: decision flip: (?#
           )decision allow, the gateway decided deny:bad_request/);

    # the completion flipped instead: its mac breaks, and it disagrees
    load($recs);
    $el = $cc->{el};
    my $a = first($recs, sub { $_[0]{type} eq 'A'
                               && $_[0]{writer} eq $cc->{writer}
                               && $_[0]{seq} == $cc->{aseq} });
    $redis->cmd('LSET', $a->{list}, $a->{idx},
                substr($a->{el}, 0, -1) . chr($a->{decision} eq 'allow'
                                              ? 3 : 1));
    broken('decision flipped, completion intact', qr/decision flip/);
}

# --- trailing bytes, bad varint, unknown type ---

load($recs);
$redis->cmd('LSET', $cc->{list}, $cc->{idx},
            substr($cc->{el}, 0, -16) . "\0" . substr($cc->{el}, -16));
broken('trailing bytes', qr/element $cc->{idx}: trailing bytes/);

load($recs);
{
    my $el = $cc->{el};
    my $s = ord(substr($el, 9, 1));
    $s < 128 or die 'test: seq too large';
    substr($el, 9, 1) = chr($s | 0x80) . "\0";
    $redis->cmd('LSET', $cc->{list}, $cc->{idx}, $el);
    broken('non-minimal varint', qr/element $cc->{idx}: .*malformed/);

    load($recs);
    $redis->cmd('LSET', $cc->{list}, $cc->{idx}, 'X' . substr($el, 1));
    broken('unknown type', qr/unknown record type/);
}

# --- time ---

{
    srand(7);
    my @w2 = writers();
    my $t = JukiRef::trail(requests => 20, writers => \@w2,
                           agencies => \@agencies, codes => \@codes,
                           start_ms => $now - 1000);
    push @$t, JukiRef::record($w2[0], 'A', agency => 'city-a',
                              ts => $now + 60000,
                              decision => 'deny:bad_request');
    load($t);
    broken('ts ahead', qr/ahead of Redis TIME/);
    ($rc) = verify('--max-skew', '2m');
    is($rc, 0, 'ts ahead: within --max-skew 2m passes');

    srand(7);
    @w2 = writers();
    $t = JukiRef::trail(requests => 20, writers => \@w2,
                        agencies => \@agencies, codes => \@codes,
                        start_ms => $now - 1000);
    push @$t, JukiRef::record($w2[1], 'A', agency => 'city-a',
                              ts => $now - 20000,
                              decision => 'deny:bad_request');
    load($t);
    broken('ts back', qr/before its writer's earlier record/);
}

# --- unconfirmed: completions never written ---

{
    my ($t) = build(owe => 1);
    load($t);
    ($rc, $out, $err) = verify();
    is($rc, 0, 'unconfirmed: not a break') or diag $err;
    like($out, qr/^unconfirmed: \d+ audit records decided by Redis have no (?#
                  )completion/m, 'unconfirmed: reported');
}

# --- a second completion for one audit record ---

load($recs);
{
    my %cp = %{ $w->[0] };
    $cp{seq} = (grep { $_->{writer} eq $w->[0]{name} } @$recs)[-1]{seq};
    $cp{prev} = substr((grep { $_->{writer} eq $w->[0]{name} } @$recs)[-1]
                       {el}, -16);
    my $last = (grep { $_->{writer} eq $w->[0]{name} } @$recs)[-1];
    $cp{prev} = $last->{type} eq 'A' ? substr($last->{el}, -17, 16)
                                     : substr($last->{el}, -16);
    my $a = first($recs, sub { $_[0]{type} eq 'A'
                               && $_[0]{writer} eq $w->[0]{name}
                               && JukiRef::redis_decided($_[0]{decision}) });
    my $c2 = JukiRef::record(\%cp, 'C', agency => $a->{agency}, ts => $now,
                             aseq => $a->{seq}, decision => $a->{decision});
    $redis->cmd('RPUSH', $c2->{list}, $c2->{el});
    broken('second completion', qr/second completion of seq $a->{seq}/);
}

# --- trimmed by the archiver: a writer whose W is gone is not checkable ---

load($recs);
{
    my $w0 = first($recs, sub { $_[0]{type} eq 'W' });
    is($w0->{idx}, 0, 'trimmed: the first W heads juki:{_}:audit');
    $redis->cmd('LTRIM', 'juki:{_}:audit', 1, -1);
    $redis->cmd('SET', 'juki:{_}:trimmed', 1);
    ($rc, $out, $err) = verify();
    is($rc, 0, 'trimmed: not a break') or diag $err;
    my $n = grep { $_->{writer} eq $w0->{writer} } @$recs;
    like($out, qr/^not checkable: ${\ ($n - 1)} records of writers whose (?#
                  )head was trimmed$/m, 'trimmed: its records counted apart');

    # an allow whose only completion is not checkable is unconfirmed, for
    # verify as for report (the completion's writer has no W record)
    my $pw = JukiRef::writer('0000000000aa0001', $ka);
    my $qw = JukiRef::writer('0000000000aa0002', $ka);
    $qw->{seq} = 5;
    $redis->cmd('RPUSH', 'juki:{_}:audit',
                JukiRef::record($pw, 'W', ts => $now)->{el});
    $redis->cmd('RPUSH', 'juki:{city-a}:audit',
                JukiRef::record($pw, 'A', agency => 'city-a', ts => $now,
                                decision => 'allow', purpose => 'tax.local',
                                gdecision => 0)->{el});
    $redis->cmd('RPUSH', 'juki:{city-a}:audit',
                JukiRef::record($qw, 'C', agency => 'city-a', ts => $now,
                                awriter => $pw->{name}, aseq => 1,
                                decision => 'allow')->{el});
    ($rc, $out, $err) = verify();
    is($rc, 0, 'completion not checkable: no break') or diag $err;
    like($out, qr/^unconfirmed: 1 audit records/m,
         'completion not checkable: verify counts the allow unconfirmed');
    like($out, qr/^not checkable: $n records/m,
         'completion not checkable: the completion is not checkable');
    my $day = POSIX::strftime('%Y-%m-%d', gmtime($now / 1000));
    ($rc, $out, $err) = jk('report', '--key', $path_a, '--from', $day,
                           '--to', $day, '--format', 'json');
    like($out, qr/"unconfirmed": 1,/,
         'completion not checkable: report agrees');
    $redis->cmd('LTRIM', 'juki:{_}:audit', 0, -2);
    $redis->cmd('LTRIM', 'juki:{city-a}:audit', 0, -3);

    # without the counter, the missing W is a break
    $redis->cmd('DEL', 'juki:{_}:trimmed');
    broken('W deleted', qr/writer $w0->{writer} seq 1: no W record/);
}

$redis->cmd('FLUSHDB');
done_testing();
