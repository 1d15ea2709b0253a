#!/usr/bin/perl

# jukictl against a tampered trail (issue 9, findings 10-12, 15-17): the
# trail is written by the Perl reference (t/jukictl/JukiRef.pm), not by the
# module, then altered the way someone with write access to Redis but
# without the audit key could: XSETID into the future, a decision flipped
# with only what the Redis traffic showed, forged and misplaced records,
# completions that do not match.  verify must exit 1 naming the break;
# report and disclose must leave out what does not verify and exit 1.
# Also: output escaping of everything that comes from Redis, secrets never
# on the command line, a password from the environment or a file, and a
# Redis that misbehaves (SCAN cursors that cycle, XRANGE ids that do not
# increase) ending in exit 2 instead of an endless loop.
#
# Env: TEST_NGINX_REDIS_PORT (required), TEST_NGINX_REDIS_HOST
# (127.0.0.1), TEST_JUKICTL_TAMPER_DB (default 12; it is flushed),
# JUKICTL (default jukictl/jukictl), TEST_NGINX_REDIS_DIR (for the Redis
# with a password; those tests are skipped without it).

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime);
use Test::More;
use Time::HiRes ();

use lib dirname(__FILE__) . '/jukictl';
use JukiRef;

my $port = $ENV{TEST_NGINX_REDIS_PORT};
plan skip_all => 'TEST_NGINX_REDIS_PORT is not set (make test sets it to a '
               . 'private Redis)' unless $port;

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

my $raw = join '', map { chr(($_ * 37 + 11) % 256) } 1 .. 40;
my $keyfile = write_file('audit.key', $raw);
my $key = JukiRef::key($raw);
my @K = ('--key', $keyfile);

my $redis = JukiRef->connect($host, $port, $db);

# jukictl with a private environment; (exit status, stdout, stderr); a
# trailing scalar ref is standard input; killed after 20 s (exit -1)
sub jk_env {
    my ($env, @args) = @_;
    my $stdin = ref $args[-1] eq 'SCALAR' ? ${ pop @args } : '';
    my $in = write_file('stdin', $stdin);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER JUKI_REDIS JUKI_REDIS_DB);
        $ENV{JUKI_REDIS} = "$host:$port";
        $ENV{JUKI_REDIS_DB} = $db;
        for my $k (keys %$env) {
            if (defined $env->{$k}) { $ENV{$k} = $env->{$k} }
            else { delete $ENV{$k} }
        }
        open STDIN, '<', $in or die;
        open STDOUT, '>', "$dir/out" or die;
        open STDERR, '>', "$dir/err" or die;
        exec $bin, @args or exit 127;
    }
    my $rc;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 20;
        waitpid $pid, 0;
        alarm 0;
        $rc = $? >> 8;
    };
    if ($@) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
        $rc = -1;
    }
    local $/;
    open my $o, '<', "$dir/out" or die;
    open my $e, '<', "$dir/err" or die;
    binmode $o;
    binmode $e;
    return ($rc, scalar(<$o> // ''), scalar(<$e> // ''));
}

sub jk { return jk_env({}, @_) }

# --- the trail: yesterday (UTC), 3 writers, 3 agencies, unknown-agency
# refusals with summary records, 4 resident codes ---

my $day_ms = 86400000;
my $today = int(time() * 1000 / $day_ms);
my $t0 = ($today - 1) * $day_ms + 3600000;
my $yday = strftime('%Y-%m-%d', gmtime(($today - 1) * 86400));
my $tday = strftime('%Y-%m-%d', gmtime($today * 86400));
my @codes = ('', map { sprintf('%011d', 31415926535 + $_) } 1 .. 4);
my @agencies = (
    [ 'city-a', 'municipality', [ 'tax.local' ] ],
    [ 'pref.b', 'prefecture', [ 'tax.local', 'election.roll' ] ],
    [ 'pension-service', 'national', [ 'pension.benefit' ] ],
);
my %statute = (
    'tax.local' => 'Local Tax Act, art. 5',
    'pension.benefit' => 'Basic Resident Registration Act, Annex 1, item 1',
);

my @W;

sub build {
    srand(9);
    @W = map { JukiRef::writer(sprintf('%016x', 0xfeed00 + $_), $key) }
         0 .. 2;
    return JukiRef::trail(requests => 300, writers => \@W,
                          agencies => \@agencies, codes => \@codes,
                          start_ms => $t0, summaries => 1);
}

# XADD with explicit ids needs them increasing per stream
sub load {
    my ($recs) = @_;
    my @sorted = sort { my @x = split /-/, $a->{id};
                        my @y = split /-/, $b->{id};
                        $x[0] <=> $y[0] || $x[1] <=> $y[1] } @$recs;
    $redis->cmd('FLUSHDB');
    $redis->cmd('HSET', 'juki:purposes', %statute);
    $redis->load(\@sorted);
}

sub f { return JukiRef::field(@_) }

# what report should count, from the records themselves
sub expect {
    my ($recs) = @_;
    my (%done, %e);
    for my $x (@$recs) {
        $done{ $x->{stream} }{ f($x, 'id') } = f($x, 'decision')
            if $x->{type} eq 'done';
    }
    for my $x (@$recs) {
        if ($x->{type} eq 'summary') {
            $e{denials} += f($x, 'suppressed');
            $e{summarised} += f($x, 'suppressed');
            next;
        }
        next unless $x->{type} eq 'audit';
        my $d = f($x, 'decision');
        if (JukiRef::redis_decided($d)
            && ($done{ $x->{stream} }{ f($x, 'id') } // '') ne $d)
        {
            $e{unconfirmed}++;
        } elsif ($d eq 'allow') {
            $e{provisions}++;
        } else {
            $e{denials}++;
        }
    }
    $e{$_} //= 0 for qw(provisions denials summarised unconfirmed);
    return \%e;
}

sub report_json {
    my (@extra) = @_;
    my ($rc, $out, $err) = jk('report', '--from', $yday, '--to', $tday,
                              '--format', 'json', @K, @extra);
    my $j = eval { decode_json($out) } // {};
    return ($rc, $j, $err);
}

sub totals {
    my ($j) = @_;
    return join ' ', map { "$_=" . ($j->{totals}{$_} // '?') }
                     qw(provisions denials summarised unconfirmed unverified);
}

sub want_totals {
    my ($e, $unverified) = @_;
    return join ' ', map { "$_=" . ($_ eq 'unverified' ? $unverified
                                                        : $e->{$_}) }
                     qw(provisions denials summarised unconfirmed unverified);
}

# one line "jukictl: verify: STREAM entry ID writer W seq S: WHAT"
sub verify_breaks {
    my ($name, $want, @extra) = @_;
    my ($rc, $out, $err) = jk('verify', @K, @extra);
    is($rc, 1, "verify: $name: exit 1");
    like($err, $want, "verify: $name: named") or diag $err;
    is(scalar(() = $err =~ /\n/g), 1, "verify: $name: one line");
    unlike($out, qr/ok/, "verify: $name: no ok");
}

sub find {
    my ($recs, $cond) = @_;
    for my $i (0 .. $#$recs) {
        return $i if $cond->($recs->[$i]);
    }
    die 'no such record';
}

my $recs = build();
my $e0 = expect($recs);
ok($e0->{summarised} > 0, "the trail has summary records ($e0->{summarised}"
   . ' refusals summarised)');
ok((grep { $_->{type} eq 'audit' && f($_, 'decision') eq 'deny:bad_request' }
    @$recs), 'the trail has bad_request refusals');

# --- intact ---

load($recs);
my ($rc, $out, $err) = jk('verify', @K);
is($rc, 0, 'intact: verify exit 0') or diag $err;
like($out, qr/^verify: ok: ${\ scalar @$recs} records \(\d+ audit, \d+ (?#
              )completion, \d+ summary, 0 control\) in 4 streams, (?#
              )3 writers$/m, 'intact: verify counts every record type');
unlike($out, qr/unconfirmed/, 'intact: nothing unconfirmed');

my $j;
($rc, $j, $err) = report_json();
is($rc, 0, 'intact: report exit 0') or diag $err;
is(totals($j), want_totals($e0, 0), 'intact: report totals');
ok((grep { $_->{reason} eq 'bad_request' } @{ $j->{denials} }),
   'intact: report counts bad_request refusals');
my ($unid) = grep { $_->{agency} eq '' && $_->{reason} eq 'unknown_agency' }
             @{ $j->{denials} };
is($unid->{count},
   $e0->{summarised} + grep({ $_->{type} eq 'audit'
                              && f($_, 'agency') eq '' } @$recs),
   'intact: unknown_agency refusals recorded plus summarised');

# --- XSETID into the future: the verifier blinded, in three ways ---

my $victim = 'juki:{city-a}:audit';
my ($last_id) = @{ $redis->cmd('XREVRANGE', $victim, '+', '-', 'COUNT', 1)
                   ->[0] };

load($recs);
$redis->cmd('XSETID', $victim, '9999999999999-0');
verify_breaks('XSETID, no entry after it',
    qr/^jukictl: verify: juki:\{city-a\}:audit entry 9999999999999-0 (?#
      )writer - seq -: last-generated-id ahead of Redis's clock by \d+ ms$/);

($rc, $j, $err) = report_json();
is($rc, 1, 'XSETID: report exit 1');
like($err, qr/^jukictl: report: juki:\{city-a\}:audit entry 9999999999999-0 (?#
              ).*last-generated-id ahead/m, 'XSETID: report names the stream');
is(totals($j), want_totals($e0, 1), 'XSETID: report still counts the rest,'
   . ' and flags one');

($rc, $out, $err) = jk('disclose', '--format', 'json', @K,
                       \"$codes[1]\n");
is($rc, 1, 'XSETID: disclose exit 1');
like($err, qr/last-generated-id ahead/, 'XSETID: disclose says why');

# the gateway goes on appending to the blinded stream: chained, valid
# records with ids past the clock
my $w = $W[0];
my @more;
for my $n (1 .. 3) {
    push @more, JukiRef::record($w, 'audit', ts => int(time() * 1000),
        node => 'gw-1', agency => 'city-a', kind => 'municipality',
        cert => '', operator => 'op-x', purpose => 'tax.local',
        subject => JukiRef::pseudonym($key, $codes[1]), method => 'GET',
        uri => '/v1/residents/', decision => 'deny:purpose_not_permitted');
}
$redis->cmd('XADD', $victim, '*', @$_) for @more;
my $seq1 = $w->{seq} - 2;
verify_breaks('XSETID, then new entries',
    qr/^jukictl: verify: juki:\{city-a\}:audit entry 9999999999999-1 writer (?#
      )$w->{name} seq $seq1: entry id ahead of Redis's clock by \d+ ms$/);

# the future entries deleted and the id set back to the top entry: the
# highest id deleted still tells
$redis->cmd('XDEL', $victim, map { "9999999999999-$_" } 1 .. 3);
$redis->cmd('XSETID', $victim, $last_id);
verify_breaks('XSETID back after deleting the future entries',
    qr/juki:\{city-a\}:audit entry \d+-\d+ writer - seq -: (?#
      )max-deleted-entry-id ahead of Redis's clock by \d+ ms/);

# --- a decision flipped with what a reader of the Redis traffic saw ---

# allow -> deny:rate_limited on a record Redis decided: the audit
# record's mac does not bind it, its completion does
sub flip {
    my ($from, $to) = @_;
    my $copy = build();
    my $i = find($copy, sub { $_[0]{type} eq 'audit'
                              && f($_[0], 'decision') eq $from });
    JukiRef::set_field($copy->[$i], 'decision', $to);
    return ($copy, f($copy->[$i], 'id'), $copy->[$i]);
}

for my $case ([ 'allow', 'deny:rate_limited' ],
              [ 'deny:rate_limited', 'allow' ],
              [ 'deny:stopped', 'allow' ])
{
    my ($from, $to) = @$case;
    my ($copy, $id) = flip($from, $to);
    load($copy);
    verify_breaks("$from flipped to $to",
        qr/^jukictl: verify: juki:\{[^}]+\}:audit entry \d+-\d+ writer \S+ (?#
          )seq \d+: completion says \Q$from\E, its audit record \Q$id\E (?#
          )says \Q$to\E$/);

    ($rc, $j, $err) = report_json();
    is($rc, 1, "$from flipped to $to: report exit 1");
    like($err, qr/completion says \Q$from\E, its audit record \Q$id\E/,
         "$from flipped to $to: report names it");
    my $e = expect($recs);
    $e->{$from eq 'allow' ? 'provisions' : 'denials'}--;
    is(totals($j), want_totals($e, 1),
       "$from flipped to $to: counted neither way");
}

# flipping the completion too: its mac binds the decision
{
    my ($copy, $id, $x) = flip('allow', 'deny:rate_limited');
    my $i = find($copy, sub { $_[0]{type} eq 'done'
                              && f($_[0], 'id') eq $id });
    JukiRef::set_field($copy->[$i], 'decision', 'deny:rate_limited');
    load($copy);
    verify_breaks('a flipped record and its flipped completion',
        qr/writer \S+ seq \d+: bad mac$/);
}

# a decision the gateway made, flipped: the audit record's mac binds it
{
    my ($copy) = flip('deny:bad_request', 'allow');
    load($copy);
    verify_breaks('deny:bad_request flipped to allow', qr/: bad mac$/);
}

# --- a forged record: zero mac, a resident's subject copied ---

sub forged {
    my $copy = build();
    my $i = find($copy, sub { $_[0]{type} eq 'audit'
                              && ($_[0]{resident} // '') eq $codes[2]
                              && f($_[0], 'agency') eq 'pref.b' });
    my $x = $copy->[$i];
    my %v = @{ $x->{fields} };
    delete @v{qw(id writer seq kid prev mac)};
    my $fw = JukiRef::writer('00000000f0f0f0f0', $key);
    my $fields = JukiRef::record($fw, 'audit', %v, decision => 'allow',
                                 purpose => 'election.roll',
                                 operator => 'mallory');
    my %over = (mac => '0' x 64);
    $fields = [ map { $_ % 2 && exists $over{ $fields->[$_ - 1] }
                      ? $over{ $fields->[$_ - 1] } : $fields->[$_] }
                0 .. $#$fields ];
    my ($ms) = $x->{id} =~ /^(\d+)/;
    splice @$copy, $i + 1, 0, { stream => $x->{stream}, id => "$ms-99",
                                fields => $fields, type => 'audit' };
    return $copy;
}

{
    my $copy = forged();
    load($copy);
    verify_breaks('a forged record',
        qr/^jukictl: verify: juki:\{pref\.b\}:audit entry \d+-99 writer (?#
          )00000000f0f0f0f0 seq 1: bad mac$/);

    my @real = grep { $_->{type} eq 'audit'
                      && ($_->{resident} // '') eq $codes[2] } @$recs;
    ($rc, $out, $err) = jk('disclose', '--format', 'json', @K,
                           \"$codes[2]\n");
    is($rc, 1, 'forged: disclose exit 1');
    like($err, qr/^jukictl: disclose: juki:\{pref\.b\}:audit entry \d+-99 (?#
                  )writer 00000000f0f0f0f0 seq 1: bad mac$/m,
         'forged: disclose names it');
    $j = decode_json($out);
    is($j->{count}, scalar @real, 'forged: disclose lists the real accesses'
       . ' only');
    is($j->{unverified}, 1, 'forged: and says one did not verify');
    ok(!(grep { $_->{purpose} eq 'election.roll'
                && $_->{agency} eq 'pref.b' && $_->{decision} eq 'allow' }
         @{ $j->{accesses} })
       || (grep { f($_, 'purpose') eq 'election.roll'
                  && f($_, 'decision') eq 'allow' } @real),
       'forged: not shown as a provision');

    ($rc, $out, $err) = jk('disclose', @K, \"$codes[2]\n");
    is($rc, 1, 'forged: disclose md exit 1');
    like($out, qr/Records that failed verification, not listed: 1/,
         'forged: the md says so');

    ($rc, $j, $err) = report_json();
    is($rc, 1, 'forged: report exit 1');
    is(totals($j), want_totals($e0, 1), 'forged: report does not count it');

    ($rc, $out, $err) = jk('report', '--from', $yday, '--to', $tday, @K);
    like($out, qr/\*\*Warning:\*\* 1 records or streams failed verification/,
         'forged: the md report warns');
    ($rc, $out, $err) = jk('report', '--from', $yday, '--to', $tday,
                           '--format', 'csv', @K);
    like($out, qr/^unverified,,,,,1\r$/m, 'forged: the csv report says so');
}

# --- completions that do not match, and a ts far from its entry id:
# small chains of one writer, signed with the key (what a gateway bug,
# or a replay of genuine records, would leave) ---

my $tx = ($today - 1) * $day_ms + 7200000;

sub chain {
    my (@steps) = @_;     # [type, agency, ms, %fields]
    my $cw = JukiRef::writer('00000000c0c0c0c0', $key);
    my @r;
    for my $s (@steps) {
        my ($type, $agency, $ms, %f) = @$s;
        $f{ts} //= $ms;
        $f{node} //= 'gw-1';
        if ($type eq 'audit') {
            %f = (agency => $agency, kind => 'municipality', cert => '',
                  operator => 'op', purpose => 'tax.local', subject => '',
                  method => 'GET', uri => '/v1/residents/',
                  decision => 'allow', %f);
        } else {
            %f = (status => 200, bytes => 1, upstream_ms => 1,
                  decision => 'allow', %f);
        }
        push @r, { stream => "juki:{$agency}:audit", id => "$ms-0",
                   fields => JukiRef::record($cw, $type, %f) };
    }
    load([ @$recs, @r ]);
    return $cw->{name};
}

my $cw = chain([ 'audit', 'city-a', $tx ],
               [ 'done', 'city-a', $tx + 10, id => '00000000c0c0c0c0-7' ]);
verify_breaks('a completion of a missing record',
    qr/^jukictl: verify: juki:\{city-a\}:audit entry ${\ ($tx + 10)}-0 (?#
      )writer $cw seq 2: completion of a missing audit record $cw-7$/);

chain([ 'audit', 'city-a', $tx ],
      [ 'done', 'pref.b', $tx + 10, id => "$cw-1" ]);
verify_breaks('a completion in another stream',
    qr/^jukictl: verify: juki:\{pref\.b\}:audit entry \d+-0 writer $cw (?#
      )seq 2: completion of an audit record of another stream (?#
      )\(juki:\{city-a\}:audit entry $tx-0\)$/);

chain([ 'audit', 'city-a', $tx ],
      [ 'done', 'city-a', $tx + 10, id => "$cw-1",
        decision => 'deny:stopped' ]);
verify_breaks('a completion with another decision',
    qr/seq 2: completion says deny:stopped, its audit record $cw-1 (?#
      )says allow$/);

chain([ 'audit', 'city-a', $tx, decision => 'deny:purpose_not_permitted' ],
      [ 'done', 'city-a', $tx + 10, id => "$cw-1" ]);
verify_breaks('a completion of a decision the gateway made',
    qr/seq 2: completion of audit record $cw-1, whose decision the gateway (?#
      )made$/);

chain([ 'audit', 'city-a', $tx ],
      [ 'done', 'city-a', $tx + 10, id => "$cw-1" ],
      [ 'done', 'city-a', $tx + 20, id => "$cw-1" ]);
verify_breaks('two completions of one record',
    qr/seq 3: second completion of audit record $cw-1$/);

chain([ 'audit', 'city-a', $tx ],
      [ 'done', 'city-a', $tx + 10, id => "$cw-1" ],
      [ 'done', 'city-a', $tx + 20, id => "$cw-2" ]);
verify_breaks('a completion of a completion',
    qr/seq 3: completion of $cw-2, which is not an audit record$/);

chain([ 'audit', 'city-a', $tx, ts => $tx - 60000,
        decision => 'deny:bad_purpose' ]);
verify_breaks('a ts far from its entry id',
    qr/^jukictl: verify: juki:\{city-a\}:audit entry $tx-0 writer $cw seq 1: (?#
      )ts 60000 ms before its entry id$/);
($rc, $out, $err) = jk('verify', @K, '--max-skew', '2m');
is($rc, 0, 'a ts 60 s off passes with --max-skew 2m') or diag $err;

chain([ 'audit', 'city-a', $tx, ts => $tx + 6000,
        decision => 'deny:bad_purpose' ]);
($rc, $j, $err) = report_json();
is($rc, 1, 'a ts far from its entry id: report exit 1');
like($err, qr/ts 6000 ms after its entry id/, 'report names it');

# a completion in a window, its audit record before it: counted, not
# checked
chain([ 'audit', 'city-a', ($today - 1) * $day_ms - 100 ],
      [ 'done', 'city-a', ($today - 1) * $day_ms + 100, id => "$cw-1" ]);
($rc, $out, $err) = jk('verify', @K, '--from', $yday);
is($rc, 0, 'a window: a completion of a record before it passes')
    or diag $err;
like($out, qr/1 completion records of audit records before the window were (?#
              )not checked/, 'a window: and is counted');

# --- unconfirmed: a writer's last completion lost ---

{
    # a crash between an allowed request's record and its completion
    my $copy = build();
    my $uw = $W[1];
    my ($lms) = $copy->[-1]{id} =~ /^(\d+)/;
    $lms += 1000;
    my $ax = { stream => 'juki:{city-a}:audit', id => "$lms-0",
               type => 'audit', resident => $codes[3],
               fields => JukiRef::record($uw, 'audit', ts => $lms,
                   node => 'gw-1', agency => 'city-a', kind => 'municipality',
                   cert => '', operator => 'op-u', purpose => 'tax.local',
                   subject => JukiRef::pseudonym($key, $codes[3]),
                   method => 'GET', uri => '/v1/residents/',
                   decision => 'allow') };
    push @$copy, $ax;
    my $id = f($ax, 'id');
    load($copy);

    ($rc, $out, $err) = jk('verify', @K);
    is($rc, 0, 'unconfirmed: not a failure by itself') or diag $err;
    like($out, qr/^verify: 1 audit record whose decision Redis made has no (?#
                  )completion record \(unconfirmed\)$/m,
         'unconfirmed: counted');
    like($out, qr/^verify: unconfirmed: \Q$ax->{stream}\E (?#
                  )entry \Q$ax->{id}\E id \Q$id\E decision allow$/m,
         'unconfirmed: named');

    ($rc, $j, $err) = report_json();
    is($rc, 0, 'unconfirmed: report exit 0') or diag $err;
    my $e = expect($copy);
    is($e->{unconfirmed}, 1, 'unconfirmed: one expected');
    is(totals($j), want_totals($e, 0),
       'unconfirmed: report counts it apart');
    is($j->{unconfirmed}[0]{decision}, 'allow',
       'unconfirmed: with its recorded decision');

    if (($ax->{resident} // '') ne '') {
        ($rc, $out, $err) = jk('disclose', '--format', 'json', @K,
                               \"$ax->{resident}\n");
        is($rc, 0, 'unconfirmed: disclose exit 0');
        my $dj = decode_json($out);
        is($dj->{unconfirmed}, 1, 'unconfirmed: disclose counts it');
        is(scalar(grep { !$_->{confirmed} } @{ $dj->{accesses} }), 1,
           'unconfirmed: disclose marks it');
    } else {
        pass('unconfirmed: (no resident)') for 1 .. 3;
    }
}

# --- escaping: names, values and reasons from Redis ---

{
    my $esc = "\e[31m";
    my $weird = "juki:{$esc}:audit";
    my $ew = JukiRef::writer('00000000e5c0e5c0', $key);
    my $tt = $tx + 5000;
    my @r = map {
        { stream => $weird, id => ($tt + $_) . '-0',
          fields => JukiRef::record($ew, 'audit', ts => $tt + $_,
              node => "gw\e]0;x\a", agency => $esc, kind => 'national',
              cert => '', operator => 'op', purpose => "tax\x9b2J",
              subject => '', method => 'GET', uri => '/v1/',
              decision => 'deny:bad_request') }
    } 0 .. 1;
    load([ @$recs, @r ]);
    $redis->cmd('HSET', 'juki:purposes', "tax\x9b2J", "Act \xe2\x80\xae"
                . "reversed \xff\x07");
    ($rc, $out, $err) = jk('verify', @K);
    is($rc, 0, 'escaping: records in an odd stream verify') or diag $err;

    for my $fmt (qw(md csv json)) {
        ($rc, $out, $err) = jk('report', '--from', $yday, '--to', $tday,
                               '--format', $fmt, @K);
        is($rc, 0, "escaping: report $fmt exit 0") or diag $err;
        unlike($out, qr/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/,
               "escaping: report $fmt: no raw control byte");
        unlike($out, qr/\xff|\xc2[\x80-\x9f]|\xe2\x80\xae|\x9b/,
               "escaping: report $fmt: no raw C1, bidi or non-UTF-8 byte");
        if ($fmt eq 'json') {
            my $rj = decode_json($out);
            my ($d) = grep { $_->{agency} eq $esc } @{ $rj->{denials} };
            is($d && $d->{count}, 2, 'escaping: json round-trips the agency');
        } elsif ($fmt eq 'md') {
            like($out, qr/\| \\\\x1b\\\[31m \| malformed request/,
                 'escaping: md shows \\x1b, itself escaped');
        } else {
            like($out, qr/^denial,\\x1b\[31m,,,bad_request,2\r$/m,
                 'escaping: csv shows \\x1b');
        }
    }

    # a copy in a stream whose name is an escape sequence
    my $copy = [ @$recs ];
    my $x = { %{ $recs->[ find($recs, sub { $_[0]{type} eq 'audit' }) ] } };
    $x->{stream} = "juki:{\e[2J\e[H}:audit";
    load([ @$copy, $x ]);
    ($rc, $out, $err) = jk('verify', @K);
    is($rc, 1, 'escaping: a record in a stream named with escapes: exit 1');
    like($err, qr/^jukictl: verify: juki:\{\\x1b\[2J\\x1b\[H\}:audit entry (?#
                  )$x->{id} writer \S+ seq \d+: record in the wrong (?#
                  )stream for its agency$/,
         'escaping: the stream name is escaped');
    unlike($err, qr/\e/, 'escaping: no raw ESC on stderr');

    # stop switches and their reasons, as status shows them
    $redis->cmd('SET', "juki:{ev\e]0;t\a}:stop", "why \e[5m\x9b\r\n");
    $redis->cmd('SET', "juki:{city-a}:stop:op:x\e[8m", "\xc2\x9b0m");
    ($rc, $out, $err) = jk('status');
    is($rc, 0, 'escaping: status exit 0') or diag $err;
    unlike($out, qr/[\x00-\x09\x0b-\x1f\x7f]|\x9b/,
           'escaping: status: no raw control byte');
    like($out, qr/agency +ev\\x1b\]0;t\\x07 +why \\x1b\[5m\\x9b\\x0d\\x0a$/m,
         'escaping: status: agency stop and reason escaped');
    like($out, qr{operator +city-a/x\\x1b\[8m +\\u009b0m$}m,
         'escaping: status: operator stop, C1 escaped');
    like($out, qr/^  juki:\{\\x1b\[2J\\x1b\[H\}|^  \\x1b\[2J\\x1b\[H/m,
         'escaping: status: stream name escaped');
}

# --- operator stops: the lower-cased id ---

$redis->cmd('FLUSHDB');
($rc, $out, $err) = jk('stop', '--agency', 'city-a', '--operator',
                       'Insider', '--reason', 'review', @K);
is($rc, 0, 'stop --operator Insider') or diag $err;
is($redis->cmd('GET', 'juki:{city-a}:stop:op:insider'), 'review',
   'stop: juki:{city-a}:stop:op:insider, lower-cased');
is(scalar @{ $redis->cmd('KEYS', 'juki:{city-a}:stop:op:*') }, 1,
   'stop: one key for every case of the id');
($rc, $out, $err) = jk('resume', '--agency', 'city-a', '--operator',
                       'INSIDER', @K);
is($rc, 0, 'resume --operator INSIDER') or diag $err;
is($redis->cmd('EXISTS', 'juki:{city-a}:stop:op:insider'), 0,
   'resume: the same key deleted');
for my $bad ('insider!', 'in sider', '', 'x' x 65, "op\e") {
    ($rc, $out, $err) = jk('stop', '--agency', 'city-a', '--operator', $bad,
                           '--reason', 'r', @K);
    is($rc, 2, 'stop: operator id "' . ($bad =~ s/\e/\\e/r) . '" refused');
}

# --- secrets: a password from the environment or a file ---

SKIP: {
    skip('TEST_NGINX_REDIS_DIR is not set (no Redis with a password)', 12)
        unless $ENV{TEST_NGINX_REDIS_DIR};

    require lib;
    lib->import(dirname(__FILE__) . '/juki');
    require JukiTest;
    JukiTest::redis3_start();
    my $sock = JukiTest::redis3_dir() . '/redis.sock';
    my %env = (JUKI_REDIS => "unix:$sock", JUKI_REDIS_DB => undef);

    ($rc, $out, $err) = jk_env(\%env, 'status');
    is($rc, 2, 'password: none given: exit 2');
    like($err, qr/NOAUTH|Authentication required/i, 'password: none: says so');

    ($rc, $out, $err) = jk_env({ %env, JUKI_REDIS_PASSWORD => 'ops-secret' },
                               'status');
    is($rc, 0, 'password: from JUKI_REDIS_PASSWORD') or diag $err;
    like($out, qr/ping +[\d.]+ ms/, 'password: status works');

    my $pf = write_file('pw', "ops-secret\n");
    ($rc, $out, $err) = jk_env(\%env, 'status', '--password-file', $pf);
    is($rc, 0, 'password: from --password-file') or diag $err;

    $pf = write_file('pw-crlf', "ops-secret\r\nsecond line\n");
    ($rc, $out, $err) = jk_env(\%env, 'stop', '--reason', 'drill',
                               '--password-file', $pf, @K);
    is($rc, 0, 'password: the first line of a CRLF file') or diag $err;

    ($rc, $out, $err) = jk_env({ %env, JUKI_REDIS_PASSWORD => 'ops-secret' },
                               'status', '--user', 'juki-gw');
    is($rc, 2, 'password: the wrong one for an ACL user: exit 2');
    unlike($err, qr/ops-secret/, 'password: never in the message');

    $pf = write_file('pw-empty', "\n");
    ($rc, $out, $err) = jk_env(\%env, 'status', '--password-file', $pf);
    is($rc, 2, 'password: an empty file line: exit 2');

    ($rc, $out, $err) = jk_env(\%env, 'status', '--password', 'ops-secret');
    is($rc, 2, 'password: on the command line: refused');
    unlike($err, qr/ops-secret/, 'password: refused without echoing it');
    like($err, qr/process list/, 'password: says why');

    JukiTest::redis3_stop();
}

# --- a Redis that misbehaves: no endless loop, exit 2 ---

# a fake Redis on a free port, answering in MODE
sub fake_redis {
    my ($mode) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Listen => 5, ReuseAddr => 1)
        or die "listen: $!";
    my $fport = $srv->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        while (my $c = $srv->accept) {
            my $multi = 0;
            binmode $c;
            while (defined(my $line = <$c>)) {
                next unless $line =~ /^\*(\d+)/;
                my @a;
                for (1 .. $1) {
                    my $len = <$c>;
                    $len =~ /^\$(\d+)/ or last;
                    read($c, my $v, $1 + 2);
                    push @a, substr($v, 0, $1);
                }
                my $cmd = uc($a[0] // '');
                $multi = 1 if $cmd eq 'MULTI';
                my $now = int(time() * 1000);
                my $out;
                if ($cmd eq 'SCAN') {
                    $out = $mode eq 'scan'
                         ? "*2\r\n\$1\r\n7\r\n*0\r\n"
                         : "*2\r\n\$1\r\n0\r\n*1\r\n\$14\r\njuki:{a}:audit\r\n";
                } elsif ($cmd eq 'MULTI') {
                    $out = "+OK\r\n";
                } elsif ($multi && ($cmd eq 'TIME' || $cmd eq 'XINFO')) {
                    $out = "+QUEUED\r\n";
                } elsif ($cmd eq 'TIME') {
                    my $sec = int($now / 1000);
                    $out = "*2\r\n\$" . length($sec) . "\r\n$sec\r\n"
                         . "\$1\r\n0\r\n";
                } elsif ($cmd eq 'EXEC') {
                    $multi = 0;
                    my $sec = int($now / 1000);
                    $out = "*2\r\n*2\r\n\$" . length($sec) . "\r\n$sec\r\n"
                         . "\$1\r\n0\r\n*2\r\n\$17\r\nlast-generated-id\r\n"
                         . "\$" . length("$now-0") . "\r\n$now-0\r\n";
                } elsif ($cmd eq 'XRANGE') {
                    my $n = $a[5] // 10;
                    my $e = "*2\r\n\$3\r\n1-0\r\n"
                          . "*2\r\n\$1\r\na\r\n\$1\r\nb\r\n";
                    $out = "*$n\r\n" . ($e x $n);
                } elsif ($cmd eq 'HGETALL') {
                    $out = "*0\r\n";
                } elsif ($cmd eq 'GET') {
                    $out = "\$-1\r\n";
                } else {
                    $out = "+OK\r\n";
                }
                print $c $out;
            }
        }
        exit 0;
    }
    close $srv;
    return ($pid, $fport);
}

for my $case ([ 'scan', [ 'status' ], qr/SCAN MATCH juki:\{\*\}:stop\* (?#
                   )returned cursor 7 again/ ],
              [ 'scan', [ 'verify', @K ], qr/returned cursor 7 again/ ],
              [ 'xrange', [ 'verify', @K ], qr/XRANGE juki:\{a\}:audit (?#
                   )returned entry 1-0 out of order/ ],
              [ 'xrange', [ 'report', '--from', $yday, '--to', $tday, @K ],
                qr/out of order/ ],
              [ 'xrange', [ 'disclose', @K, \"12345678901\n" ],
                qr/out of order/ ],
              [ 'xrange', [ 'status' ], qr/out of order/ ])
{
    my ($mode, $args, $want) = @$case;
    my ($fpid, $fport) = fake_redis($mode);
    my $t = Time::HiRes::time();
    ($rc, $out, $err) = jk_env({ JUKI_REDIS => "127.0.0.1:$fport",
                                 JUKI_REDIS_DB => undef }, @$args);
    my $took = Time::HiRes::time() - $t;
    kill 'KILL', $fpid;
    waitpid $fpid, 0;
    my $name = "misbehaving Redis ($mode): $args->[0]";
    is($rc, 2, "$name: exit 2, not a hang");
    like($err, $want, "$name: says why") or diag $err;
    ok($took < 10, "$name: at once ($took s)");
}

$redis->cmd('FLUSHDB');

done_testing();
