#!/usr/bin/perl

# jukictl against a private Redis: a synthetic A3 audit trail written by
# a Perl reference writer (t/jukictl/JukiRef.pm, docs/audit.md), then
# verify, status, report, stop/resume (their W and K
# records decoded and checked here), function load/status, usage errors,
# watch, disclose.  The tampers are t/jukictl-tamper.t.
#
# Env: TEST_NGINX_REDIS_PORT (required), TEST_NGINX_REDIS_HOST
# (127.0.0.1), TEST_JUKICTL_DB (database number, default 13; it is
# flushed), JUKICTL (binary, default jukictl/jukictl).

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Digest::SHA;
use JSON::PP;
use POSIX qw(strftime);
use Test::More;

use lib dirname(__FILE__) . '/jukictl';
use JukiRef;

my $port = $ENV{TEST_NGINX_REDIS_PORT};
plan skip_all => 'TEST_NGINX_REDIS_PORT is not set (make test sets it to a '
               . 'private Redis)' unless $port;

my $host = $ENV{TEST_NGINX_REDIS_HOST} || '127.0.0.1';
my $db = $ENV{TEST_JUKICTL_DB} // 13;
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

sub raw_key { join '', map { chr(($_[0] * 31 + $_ * 7) % 256) } 1 .. $_[1] }

my $path_a = write_file('a.key', raw_key(1, 32));
my $path_b = write_file('b.key', raw_key(2, 48));
my $path_short = write_file('short.key', raw_key(3, 31));
my $ka = JukiRef::key(raw_key(1, 32));
my $kb = JukiRef::key(raw_key(2, 48));

my $redis = JukiRef->connect($host, $port, $db);

# run jukictl; returns (exit status, stdout, stderr)
sub jk {
    my (@args) = @_;
    my $stdin = ref $args[-1] eq 'SCALAR' ? ${ pop @args } : '';
    my $in = write_file('stdin', $stdin);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "$host:$port";
        $ENV{JUKI_REDIS_DB} = $db;
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER);
        JukiRef::role_env(@args);
        open STDIN, '<', $in or die;
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

# the trail: two days ago and yesterday (UTC), 4 writers (one with the
# second key), 3 agencies plus unknown-agency records, 6 resident codes

my $day_ms = 86400000;
my $today = int(time() * 1000 / $day_ms);
my ($day1, $day2) = map { strftime('%Y-%m-%d', gmtime(($today - $_) * 86400)) }
                    2, 1;
my @codes = ('', map { sprintf('%012d', 100000000001 * $_) } 1 .. 6);
my @agencies = (
    [ 'pension-service', 'national', [ 'pension.benefit',
                                       'pension.survivor' ] ],
    [ 'city-a', 'municipality', [ 'tax.local' ] ],
    [ 'pref.b', 'prefecture', [ 'tax.local', 'election.roll' ] ],
);
my %statute = (
    'pension.benefit' => 'Basic Resident Registration Act, Annex 1, item 1',
    'pension.survivor' => 'Annex 1, item 2 "survivor" | pensions',
    'tax.local' => 'Local Tax Act, art. 5',
);

sub build {
    my (%o) = @_;
    srand($o{seed} // 42);
    my @w = map { JukiRef::writer(sprintf('%016x', 0x5eed00 + $_),
                                  $_ == 3 ? $kb : $ka) } 0 .. 3;
    my $r1 = JukiRef::trail(requests => 150, writers => \@w,
                            agencies => \@agencies, codes => \@codes,
                            start_ms => ($today - 2) * $day_ms + 3600000);
    my $r2 = JukiRef::trail(requests => 250, writers => \@w,
                            agencies => \@agencies, codes => \@codes,
                            start_ms => ($today - 1) * $day_ms + 3600000);
    return [ @$r1, @$r2 ];
}

sub load {
    my ($recs) = @_;
    $redis->cmd('FLUSHDB');
    $redis->cmd('HSET', 'juki:purposes', %statute);
    $redis->load($recs);
}

my $recs = build();
my $nrec = @$recs;
my ($rc, $out, $err);

# --- verify, intact ---

load($recs);
($rc, $out, $err) = jk('verify', '--key', $path_a, '--key', $path_b);
is($rc, 0, 'verify: intact trail passes') or diag $err;
like($out, qr/^ok: $nrec records \(4 writer, \d+ audit, \d+ completion, (?#
              )0 summary, 0 control\) in 4 lists, 4 writers$/m,
     'verify: counts records, lists, writers');
is($err, '', 'verify: nothing on stderr');

($rc, $out, $err) = jk('verify', '--key', $path_a);
is($rc, 1, 'verify: a writer under an unknown key fails');
like($err, qr/^jukictl:\ verify:\ juki:\{_\}:audit\ element\ \d+\ writer
                \ 00000000005eed03\ seq\ 0:\ unknown\ kid\ $kb->{kid}$/mx,
     'verify: names the unknown kid');

($rc, $out, $err) = jk('verify', '--from', $day2, '--key', $path_a);
is($rc, 2, 'verify --from: refused on A3 (a usage error)');
like($err, qr/\Ajukictl: verify --from\/--to: not supported[^\n]*\n\z/,
     'verify --from: says so, one line');

# --- status: today's counts (the trail is of the two days before) ---

{
    my @w = (JukiRef::writer('0000000000007d00', $ka));
    my $t = JukiRef::trail(requests => 30, writers => \@w,
                           agencies => \@agencies, codes => \@codes,
                           summaries => 1, start_ms => $today * $day_ms);
    $redis->load($t);
    my (%allow, %deny);
    for my $r (@$t) {
        my $ag = $r->{agency} eq '' ? '(no agency)' : $r->{agency};
        if ($r->{type} eq 'A') {
            $r->{decision} eq 'allow' ? $allow{$ag}++ : $deny{$ag}++;
        } elsif ($r->{type} eq 'S') {
            $deny{$ag} += $r->{suppressed};
        }
    }
    ($rc, $out, $err) = jk('status');
    is($rc, 0, 'status: exit 0') or diag $err;
    for my $ag (sort keys %{ { %allow, %deny } }) {
        like($out, qr/^  \Q$ag\E +${\ ($allow{$ag} \/\/ 0)} +(?#
                      )${\ ($deny{$ag} \/\/ 0)}(  |$)/m,
             "status: today's counts of $ag");
    }
    ($rc, $out, $err) = jk('verify', '--key', $path_a, '--key', $path_b);
    is($rc, 0, 'verify: the trail plus today passes') or diag $err;
    load($recs);
}

# --- report ---

load($recs);

my (%prov, %deny, $nprov, $ndeny);
for my $x (@$recs) {
    next unless $x->{type} eq 'A';
    my ($ag, $pu, $de) = @$x{qw(agency purpose decision)};
    if ($de eq 'allow') { $prov{"$ag|$pu"}++; $nprov++ }
    else { $deny{"$ag|" . substr($de, 5)}++; $ndeny++ }
}

my @keys = ('--key', $path_a, '--key', $path_b);

($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2);
is($rc, 2, 'report: without the key, a usage error');
like($err, qr/report needs the audit key/, 'report: says it needs the key');

($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2,
                       '--format', 'json', @keys);
is($rc, 0, 'report json: exit 0') or diag $err;
is($err, '', 'report json: nothing on stderr');
my $j = eval { decode_json($out) };
ok($j, 'report json: parses') or diag $@;
is($j->{totals}{provisions}, $nprov, 'report json: total provisions');
is($j->{totals}{denials}, $ndeny, 'report json: total denials');
is_deeply({ map { ("$_->{agency}|$_->{purpose}" => $_->{count}) }
            @{ $j->{provisions} } }, \%prov,
          'report json: provisions per agency and purpose');
is_deeply({ map { ("$_->{agency}|$_->{reason}" => $_->{count}) }
            @{ $j->{denials} } }, \%deny,
          'report json: denials per agency and reason');
is((grep { $_->{purpose} eq 'pension.survivor' } @{ $j->{provisions} })[0]
   {statute}, $statute{'pension.survivor'}, 'report json: statute text');

# RFC 4180 rows (the fields here hold no line breaks)
sub csv_rows {
    my ($text) = @_;
    my @rows;
    for my $line (split /\r\n/, $text) {
        my @f;
        while ($line =~ /\G(?:"((?:[^"]|"")*)"|([^,"]*))(,|\z)/g) {
            my ($quoted, $plain, $sep) = ($1, $2, $3);
            push @f, defined $quoted ? ($quoted =~ s/""/"/gr) : $plain;
            last if $sep eq '';
        }
        push @rows, \@f;
    }
    return @rows;
}

($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2,
                       '--format', 'csv', @keys);
is($rc, 0, 'report csv: exit 0');
my @rows = csv_rows($out);
is_deeply($rows[0], [qw(section agency purpose statute reason count)],
          'report csv: header row');
my (%cp, %cd);
for my $row (@rows[1 .. $#rows]) {
    $cp{"$row->[1]|$row->[2]"} = $row->[5] if $row->[0] eq 'provision';
    $cd{"$row->[1]|$row->[4]"} = $row->[5] if $row->[0] eq 'denial';
}
is_deeply(\%cp, \%prov, 'report csv: provisions');
is_deeply(\%cd, \%deny, 'report csv: denials');
ok((grep { $_->[3] eq $statute{'pension.survivor'} } @rows),
   'report csv: a quoted statute survives');

($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2, @keys);
is($rc, 0, 'report md: exit 0');
like($out, qr/^# Provision of resident registry information/m,
     'report md: title');
like($out, qr/Period: $day1 to $day2/, 'report md: period');
like($out, qr/\| \*\*Total\*\* \| \| \| \*\*$nprov\*\* \|/,
     'report md: provisions total');
like($out, qr/\| \*\*Total\*\* \| \| \*\*$ndeny\*\* \|/,
     'report md: denials total');
like($out, qr/"survivor" \\\| pensions/, 'report md: pipe escaped');
{
    # what else Markdown must not take as markup
    $redis->cmd('HSET', 'juki:purposes', 'tax.local',
                "Act &lt; & <b>x</b> ~~y~~\nz");
    ($rc, $out) = jk('report', '--from', $day1, '--to', $day2, @keys);
    like($out, qr/\| Act &amp;lt; &amp; &lt;b&gt;x&lt;\/b&gt; (?#
                  )\\~\\~y\\~\\~\\\\x0az \|/,
         'report md: & < > ~ and a line break escaped');
    $redis->cmd('HSET', 'juki:purposes', %statute);
}

($rc, $out, $err) = jk('report', '--from', $day2, '--to', $day2,
                       '--format', 'json', @keys);
$j = decode_json($out);
my $n2 = grep { $_->{type} eq 'A' && $_->{decision} eq 'allow'
                && $_->{ts} >= ($today - 1) * $day_ms }
         @$recs;
is($j->{totals}{provisions}, $n2, 'report: the window is by ts');

($rc, $out) = jk('report', '--from', '2001-01-01', '--to', '2001-12-31',
                 '--format', 'json', @keys);
is(decode_json($out)->{totals}{provisions}, 0, 'report: empty period');

# a flipped decision: named, left out, exit 1
{
    my $i = 0;
    my %n;
    my ($x) = grep { $_->{type} eq 'A' && $_->{decision} eq 'allow' }
              map { $_->{idx} = $n{ $_->{list} }++; $_ } @$recs;
    $redis->cmd('LSET', $x->{list}, $x->{idx},
                substr($x->{el}, 0, -1) . chr(2));
    ($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2,
                           '--format', 'json', @keys);
    is($rc, 1, 'report: a flipped decision exits 1');
    like($err, qr/decision flip.*\n.*1 record failed verification/s,
         'report: names it and says it is left out');
    $j = eval { decode_json($out) } // {};
    is($j->{totals}{provisions} // -1, $nprov - 1,
       'report: the flipped record is left out');
    load($recs);
}

# --- disclose ---

my $code = $codes[3];
my @want = sort map { my $x = $_;
                      join '|', @$x{qw(ts agency purpose decision)} }
           grep { $_->{type} eq 'A' && $_->{resident} eq $code } @$recs;
ok(@want > 5, 'disclose: the resident has accesses (' . @want . ')');

($rc, $out, $err) = jk('disclose', '--format', 'json', '--key', $path_a,
                       '--key', $path_b, \"$code\n");
is($rc, 0, 'disclose json: exit 0') or diag $err;
$j = decode_json($out);
is($j->{count}, scalar @want, 'disclose: exactly the accesses of one code');

sub iso_ms {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se, $ms) =
        $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z$/
        or return -1;
    require Time::Local;
    return Time::Local::timegm($se, $mi, $h, $d, $mo - 1, $y) * 1000 + $ms;
}

is_deeply([ sort map { join '|', iso_ms($_->{time}),
                        @$_{qw(agency purpose decision)} }
            @{ $j->{accesses} } ], \@want,
          'disclose: time, agency, purpose, decision match');
is(scalar(grep { $_->{confirmed} } @{ $j->{accesses} }), scalar @want,
   'disclose: every decision confirmed');
is($j->{unconfirmed} . ' ' . $j->{unverified}, '0 0',
   'disclose: none unconfirmed, none unverified');
unlike($out, qr/$code/, 'disclose: the resident code is not printed');
unlike($out, qr/"op\d+"|operator/, 'disclose: operator ids withheld');

($rc, $out) = jk('disclose', '--resident-code', '-', '--format', 'json',
                 '--key', $path_a, \"$code\n");
my $only_a = grep { $_->{type} eq 'A' && $_->{resident} eq $code
                    && $_->{key} == $ka } @$recs;
is(decode_json($out)->{count}, $only_a,
   'disclose: with one key, the records under that key');

($rc, $out, $err) = jk('disclose', '--resident-code', '-', '--key', $path_a,
                       '--key', $path_b, \"$code\n");
is($rc, 0, 'disclose md: code from stdin');
like($out, qr/Requests about you: ${\ scalar @want}/, 'disclose md: count');
unlike($out, qr/$code/, 'disclose md: the code is not printed');

($rc, $out) = jk('disclose', '--format', 'csv', '--from', $day2, '--key',
                 $path_a, '--key', $path_b, \"$code\r\n");
@rows = csv_rows($out);
is_deeply($rows[0], [qw(time agency purpose statute decision confirmed)],
          'disclose csv: header');
is(@rows - 1, scalar(grep { (split /\|/)[0] >= ($today - 1) * $day_ms } @want),
   'disclose csv --from: the window');

($rc, $out) = jk('disclose', '--format', 'json', '--key', $path_a,
                 \"999999999999\n");
is(decode_json($out)->{count}, 0, 'disclose: an unknown code has none');

# a failed record is left out, and the exit status says so
{
    my %n;
    my ($x) = grep { $_->{type} eq 'A' && $_->{resident} eq $code }
              map { $_->{idx} = $n{ $_->{list} }++; $_ } @$recs;
    (my $e = $x->{el}) =~ s{/v1/residents/}{/v1/residentZ/};
    $redis->cmd('LSET', $x->{list}, $x->{idx}, $e);
    ($rc, $out, $err) = jk('disclose', '--format', 'json', '--key', $path_a,
                           '--key', $path_b, \"$code\n");
    is($rc, 1, 'disclose: an edited record exits 1');
    like($err, qr/bad mac/, 'disclose: names it');
    is((eval { decode_json($out) } // {})->{count} // -1, @want - 1,
       'disclose: the edited record is left out');
    load($recs);
}

# the failure count is of records left out, not of breaks: a writer under
# a key not given, with 3 records (W and 2 A), is one break
{
    load($recs);
    my $uw = JukiRef::writer('00000000000bad03', JukiRef::key(raw_key(9, 32)));
    my @x = (JukiRef::record($uw, 'W', ts => ($today - 1) * $day_ms + 5000));
    push @x, JukiRef::record($uw, 'A', agency => 'city-a',
                             ts => ($today - 1) * $day_ms + 6000 + $_,
                             decision => 'deny:bad_request',
                             purpose => 'tax.local')
        for 1 .. 2;
    $redis->load(\@x);
    ($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2,
                           '--format', 'json', @keys);
    is($rc, 1, 'unverified records: report exits 1');
    is((eval { decode_json($out) } // {})->{totals}{unverified} // -1, 3,
       'unverified records: report json counts the 3 records');
    like($err, qr/^jukictl: report: 3 records failed verification and are (?#
                  )left out; run jukictl verify$/m,
         'unverified records: report says 3 on stderr');
    ($rc, $out) = jk('report', '--from', $day1, '--to', $day2,
                     '--format', 'csv', @keys);
    ok((grep { join(',', @$_) eq 'unverified,,,,,3' } csv_rows($out)),
       'unverified records: report csv row');
    ($rc, $out) = jk('report', '--from', $day1, '--to', $day2, @keys);
    like($out, qr/^- \*\*Records that failed verification \(in any list, (?#
                  )of any date\), not counted: 3\*\*$/m,
         'unverified records: report md');
    ($rc, $out, $err) = jk('disclose', '--format', 'json', @keys,
                           \"$code\n");
    is($rc, 1, 'unverified records: disclose exits 1');
    is((eval { decode_json($out) } // {})->{unverified} // -1, 3,
       'unverified records: disclose json counts the 3 records');
    load($recs);
}

# records not checkable (the first W archived): counted, and exit 1
{
    load($recs);
    my ($w0) = grep { $_->{list} eq 'juki:{_}:audit' } @$recs;
    is($w0->{type}, 'W', 'not checkable: a W heads juki:{_}:audit');
    my $n = grep { $_->{writer} eq $w0->{writer} } @$recs;
    $n--;
    $redis->cmd('LPOP', 'juki:{_}:audit');
    $redis->cmd('SET', 'juki:{_}:trimmed', 1);
    ($rc, $out, $err) = jk('report', '--from', $day1, '--to', $day2,
                           '--format', 'json', @keys);
    is($rc, 1, 'not checkable: report exits 1');
    $j = eval { decode_json($out) } // {};
    is(($j->{totals}{uncheckable} // -1) . ' ' . ($j->{totals}{unverified}
       // -1), "$n 0", 'not checkable: report json totals.uncheckable');
    like($err, qr/^jukictl: report: $n records are not checkable \(no W (?#
                  )record while juki:\{_\}:trimmed > 0\) and are left out$/m,
         'not checkable: report says it on stderr');
    ($rc, $out) = jk('report', '--from', $day1, '--to', $day2,
                     '--format', 'csv', @keys);
    is($rc, 1, 'not checkable: report csv exits 1');
    ok((grep { join(',', @$_) eq "uncheckable,,,,,$n" } csv_rows($out)),
       'not checkable: report csv row');
    ($rc, $out) = jk('report', '--from', $day1, '--to', $day2, @keys);
    is($rc, 1, 'not checkable: report md exits 1');
    like($out, qr/^- \*\*Records that could not be checked \(in any list, (?#
                  )of any date\), not counted: $n\*\*$/m,
         'not checkable: report md line');
    like($out, qr/^\*\*Warning:\*\* 0 records failed verification and $n (?#
                  )could not be checked$/m, 'not checkable: report md warning');
    ($rc, $out, $err) = jk('disclose', '--format', 'json', @keys,
                           \"$code\n");
    is($rc, 1, 'not checkable: disclose exits 1');
    is((eval { decode_json($out) } // {})->{uncheckable} // -1, $n,
       'not checkable: disclose json');
    like($err, qr/^jukictl: disclose: $n records are not checkable/m,
         'not checkable: disclose says it on stderr');
    ($rc, $out) = jk('disclose', @keys, \"$code\n");
    is($rc, 1, 'not checkable: disclose md exits 1');
    like($out, qr/^- \*\*Records that could not be checked \(in any list, (?#
                  )of any date\), not listed: $n\*\*$/m,
         'not checkable: disclose md line');
    ($rc, $out, $err) = jk('disclose', '--format', 'csv', @keys,
                           \"$code\n");
    is($rc, 1, 'not checkable: disclose csv exits 1');
    like($err, qr/^jukictl: disclose: $n records are not checkable/m,
         'not checkable: disclose csv says it on stderr');
    my @r = csv_rows($out);
    shift @r;
    is(scalar(grep { @$_ != 6 || $_->[0] !~ /\A\d{4}-\d\d-\d\dT/ } @r), 0,
       'not checkable: disclose csv stays data only (one row per access)');
    load($recs);
}

# --- stop / resume ---

($rc, $out, $err) = jk('stop', '--reason', 'leak suspected', '--key',
                       $path_a);
is($rc, 0, 'stop: global') or diag $err;
is($redis->cmd('GET', 'juki:stop'), 'leak suspected', 'stop: juki:stop set');
($rc) = jk('stop', '--agency', 'City-A', '--reason', 'audit', '--key',
           $path_a);
is($redis->cmd('GET', 'juki:{city-a}:stop'), 'audit',
   'stop --agency: lower-cased key set');
($rc) = jk('stop', '--agency', 'city-a', '--operator', 'Op.7', '--reason',
           'odd pattern', '--key', $path_a);
is($redis->cmd('GET', 'juki:{city-a}:stop:op:op.7'), 'odd pattern',
   'stop --operator: the lower-cased key set');
is($redis->cmd('EXISTS', 'juki:{city-a}:stop:op:Op.7'), 0,
   'stop --operator: not the key as typed');

($rc, $out) = jk('status');
is($rc, 0, 'status: exit 0');
like($out, qr/global .* leak suspected/, 'status: global switch');
like($out, qr/agency +city-a +audit/, 'status: agency switch');
like($out, qr{operator +city-a/op\.7 +odd pattern}, 'status: operator switch');
like($out, qr/ping +[\d.]+ ms/, 'status: ping');
like($out, qr/role +master/, 'status: role');

# the last W of juki:{_}:audit and the last K of a list, decoded here
sub take_varint {
    my ($r) = @_;
    my ($v, $sh) = (0, 0);
    while (1) {
        my $b = ord(substr($$r, 0, 1, ''));
        $v |= ($b & 0x7f) << $sh;
        last unless $b & 0x80;
        $sh += 7;
    }
    return $v;
}
sub take_str { my ($r) = @_; my $n = take_varint($r);
               return substr($$r, 0, $n, '') }

sub control {
    my ($list, $agency) = @_;
    my $w = $redis->cmd('LINDEX', 'juki:{_}:audit', -1);
    my $k = $redis->cmd('LINDEX', $list, -1);
    $w = $redis->cmd('LINDEX', 'juki:{_}:audit', -2)
        if $list eq 'juki:{_}:audit';
    my %c;
    my $b = $k;
    $c{type} = substr($b, 0, 1, '');
    $c{writer} = unpack('H16', substr($b, 0, 8, ''));
    $c{seq} = take_varint(\$b);
    $c{ts} = unpack('Q>', "\0\0" . substr($b, 0, 6, ''));
    $c{action} = ord(substr($b, 0, 1, ''));
    $c{scope} = ord(substr($b, 0, 1, ''));
    $c{operator} = take_str(\$b);
    $c{reason} = take_str(\$b);
    $c{actor} = take_str(\$b);
    $c{rest} = length $b;
    $c{wtype} = substr($w, 0, 1);
    $c{wwriter} = unpack('H16', substr($w, 1, 8));
    $c{kid} = unpack('H16', substr($w, 15, 8));
    $c{role} = ord(substr($w, -17, 1));
    my $wmac = JukiRef::mac16($ka, '_', "\0" x 16, substr($w, 0, -16));
    $c{wmac_ok} = $wmac eq substr($w, -16) ? 1 : 0;
    $c{kmac_ok} = JukiRef::mac16($ka, $agency, $wmac, substr($k, 0, -16))
                  eq substr($k, -16) ? 1 : 0;
    return \%c;
}

my $cf = control('juki:{city-a}:audit', 'city-a');
is_deeply([ @$cf{qw(type seq action scope operator reason rest)} ],
          [ 'K', 1, 1, 3, 'op.7', 'odd pattern', 16 ],
          'stop: K record fields');
ok(abs($cf->{ts} - time() * 1000) < 60000, 'stop: K record ts');
is_deeply([ @$cf{qw(wtype wwriter kid role)} ],
          [ 'W', $cf->{writer}, $ka->{kid}, 2 ],
          'stop: its W record, in juki:{_}:audit, role 2, the key\'s kid');
is("$cf->{wmac_ok} $cf->{kmac_ok}", '1 1', 'stop: W and K macs chain');

($rc) = jk('resume', '--agency', 'city-a', '--operator', 'OP.7', '--key',
           $path_a);
is($rc, 0, 'resume --operator, in another case');
is($redis->cmd('EXISTS', 'juki:{city-a}:stop:op:op.7'), 0,
   'resume: operator key deleted');
($rc) = jk('resume', '--reason', 'all clear', '--key', $path_a);
is($redis->cmd('EXISTS', 'juki:stop'), 0, 'resume: global key deleted');
$cf = control('juki:{_}:audit', '_');
is("$cf->{action} $cf->{scope} $cf->{reason} $cf->{kmac_ok}",
   '2 1 all clear 1', 'resume: K record in juki:{_}:audit');

($rc, $out, $err) = jk('verify', '--key', $path_a, '--key', $path_b);
is($rc, 0, 'verify: trail plus control records passes') or diag $err;
like($out, qr/\(\d+ writer, \d+ audit, \d+ completion, 0 summary, (?#
              )5 control\)/, 'verify: control records counted');

# --- function load / status ---

# the library id computed here from the header, independently of jukictl:
# the C string literals of NGX_HTTP_JUKI_FUNCTION_LIBRARY, unescaped
sub function_template {
    my $h = dirname(__FILE__) . '/../src/ngx_http_juki_function.h';
    open my $f, '<', $h or die "$h: $!";
    my $src = do { local $/; <$f> };
    my ($def) = $src =~ /#define NGX_HTTP_JUKI_FUNCTION_LIBRARY(.*?)\n\n/s
        or die "no library in $h";
    $def =~ s{/\*.*?\*/}{}gs;
    my $t = '';
    while ($def =~ /"((?:[^"\\]|\\.)*)"/g) {
        my $lit = $1;
        $lit =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
        $t .= $lit;
    }
    return $t;
}

{
    my $fid = substr(Digest::SHA::sha256_hex(function_template()), 0, 12);
    my $lib = "juki_$fid";
    eval { $redis->cmd('FUNCTION', 'DELETE', $lib) };

    ($rc, $out, $err) = jk('function', 'status');
    is($rc, 1, 'function status: not loaded exits 1') or diag $err;
    like($out, qr/\Afunction library $lib is not loaded/,
         'function status: says not loaded, with the id');

    ($rc, $out, $err) = jk('function', 'load');
    is($rc, 0, 'function load: exit 0') or diag $err;
    is($out, "function library $lib loaded\n", 'function load: loaded');
    my $l = $redis->cmd('FUNCTION', 'LIST', 'LIBRARYNAME', $lib);
    is(scalar @$l, 1, 'function load: the library is in Redis');
    my %li = @{ $l->[0] };
    is($li{library_name}, $lib, 'function load: under its id');
    is(join(',', map { { @$_ }->{name} } @{ $li{functions} }),
       "${lib}_batch", 'function load: its one function, @V@ replaced');

    ($rc, $out, $err) = jk('function', 'load');
    is($rc, 0, 'function load again: exit 0') or diag $err;
    is($out, "function library $lib already loaded\n",
       'function load again: already loaded');

    ($rc, $out, $err) = jk('function', 'status');
    is($rc, 0, 'function status: loaded exits 0') or diag $err;
    like($out, qr/\Afunction library $lib is loaded/,
         'function status: says loaded');

    # a call the library refuses before writing anything: it is callable
    my $e = eval { $redis->cmd('FCALL', "${lib}_batch", 1, 'bad', '', '',
                               '') ; '' } // $@;
    like($e, qr/juki: bad key/, 'function load: the function answers FCALL');

    # another error: one line, exit 2 (a user without FUNCTION LOAD)
    $redis->cmd('ACL', 'SETUSER', 'jk-nofn', 'on', '>pw-nofn', '~*',
                '+@all', '-function');
    {
        local $ENV{JUKI_REDIS_PASSWORD} = 'pw-nofn';
        my $pid = fork // die;
        if ($pid == 0) {
            $ENV{JUKI_REDIS} = "$host:$port";
            open STDOUT, '>', "$dir/out" or die;
            open STDERR, '>', "$dir/err" or die;
            exec $bin, 'function', 'load', '--user', 'jk-nofn' or exit 127;
        }
        waitpid $pid, 0;
        $rc = $? >> 8;
        local $/;
        open my $ef, '<', "$dir/err" or die;
        $err = <$ef> // '';
    }
    is($rc, 2, 'function load: a refused load exits 2');
    like($err, qr/\Ajukictl: [^\n]*FUNCTION LOAD[^\n]*\n\z/,
         'function load: a refused load: one line') or diag $err;
    $redis->cmd('ACL', 'DELUSER', 'jk-nofn');

    ($rc, $out, $err) = jk('function', 'frob');
    is($rc, 2, 'function: unknown subcommand exits 2');
}

# --- usage errors: exit 2, one line ---

for my $case (
    [ 'no command' ],
    [ 'unknown command', 'frobnicate' ],
    [ 'unknown option', 'status', '--bogus' ],
    [ 'option of another command', 'status', '--reason', 'x' ],
    [ 'stop without reason', 'stop', '--key', $path_a ],
    [ 'operator without agency', 'stop', '--operator', 'x', '--reason',
      'r', '--key', $path_a ],
    [ 'bad agency', 'stop', '--agency', 'a b', '--reason', 'r', '--key',
      $path_a ],
    [ 'short key', 'verify', '--key', $path_short ],
    [ 'missing key file', 'verify', '--key', "$dir/nonexistent" ],
    [ 'no key', 'verify' ],
    [ 'password on the command line', 'status', '--password', 'pw' ],
    [ 'missing value', 'verify', '--max-skew' ],
    [ 'disclose without code on stdin', 'disclose', '--key', $path_a ],
    [ 'empty code on stdin', 'disclose', '--key', $path_a, \"\n" ],
    [ 'a CR inside the code', 'disclose', '--key', $path_a,
      \"123456\r789012\n" ],
    [ 'a CR inside the code, no LF', 'disclose', '--key', $path_a,
      \"123456\r789012" ],
    [ 'a code too long', 'disclose', '--key', $path_a,
      \('1' x 257 . "\n") ],
    [ 'code on the command line', 'disclose', '--resident-code',
      '123456789012', '--key', $path_a ],
    [ 'report without --to', 'report', '--from', $day1 ],
    [ 'bad date', 'report', '--from', '2024-02-30', '--to', '2024-03-01' ],
    [ 'reversed dates', 'report', '--from', $day2, '--to', $day1 ],
    [ 'bad format', 'report', '--from', $day1, '--to', $day2, '--format',
      'xml' ],
    [ 'missing password file', 'status', '--password-file',
      "$dir/nonexistent" ],
    [ 'user without password', 'status', '--user', 'u' ],
    [ 'bad --max-skew', 'verify', '--max-skew', '5 s', '--key', $path_a ],
    [ '--max-skew over a day', 'verify', '--max-skew', '25h', '--key',
      $path_a ],
    [ 'operator with a space', 'stop', '--agency', 'a', '--operator', 'a b',
      '--reason', 'r', '--key', $path_a ],
    [ 'operator too long', 'stop', '--agency', 'a', '--operator', 'o' x 65,
      '--reason', 'r', '--key', $path_a ],
    [ 'bad db', 'status', '--db', 'x' ],
    [ 'bad address', 'status', '--redis', 'localhost:99999' ],
    # a resident code given where a word was expected is not echoed
    [ 'a code before the command', '123456789012', 'status' ],
    [ 'a code as the command', '123456789012' ],
    [ 'a code as an option', 'status', '--123456789012' ],
    [ 'a code as a short option', 'status', '-123456789012' ],
    [ 'a code as an option with a value', 'status', '--123456789012=x' ],
    [ 'a code as a function subcommand', 'function', '123456789012' ],
    [ 'a code as --db', 'status', '--db', '123456789012' ],
    [ 'a code as --format', 'report', '--from', $day1, '--to', $day2,
      '--format', '123456789012' ],
    [ 'a code as --max-skew', 'verify', '--max-skew', '123456789012',
      '--key', $path_a ],
    [ 'a code as --from', 'report', '--from', '123456789012', '--to',
      $day2 ],
    [ 'a code as --to', 'disclose', '--to', '123456789012', '--key',
      $path_a, \"123456789018\n" ],
) {
    my ($name, @args) = @$case;
    ($rc, $out, $err) = jk(@args);
    is($rc, 2, "usage: $name exits 2");
    like($err, qr/\Ajukictl: [^\n]+\n\z/, "usage: $name: one line");
    unlike($err, qr/123456789012|789012|\bpw\b/,
           "usage: $name: no secret echoed");
}

# a word that looks like a name is still echoed
($rc, $out, $err) = jk('frobnicate');
like($err, qr/\Ajukictl: unknown command "frobnicate" \(see[^\n]*\n\z/,
     'unknown command: a name-like word is echoed');
($rc, $out, $err) = jk('status', '--bogus=123456789012');
like($err, qr/\Ajukictl: unknown option "--bogus" \(see[^\n]*\n\z/,
     'unknown option: the name echoed, not its value');
($rc, $out, $err) = jk('123456789012');
like($err, qr/\Ajukictl: unknown command \(see[^\n]*\n\z/,
     'unknown command: a code is not echoed');

($rc, $out, $err) = jk('status', '--password', 'pw');
like($err, qr/JUKI_REDIS_PASSWORD or give --password-file/,
     'a literal password: says what to use');

($rc, $out, $err) = jk('verify', '--help');
is($rc, 0, 'verify --help exits 0');
like($out, qr/usage: jukictl verify/, 'verify --help');

# --- unreachable Redis ---

for my $cmd ([ 'status' ], [ 'verify', '--key', $path_a ],
             [ 'stop', '--reason', 'x', '--key', $path_a ]) {
    ($rc, $out, $err) = jk(@$cmd, '--redis', '127.0.0.1:1');
    is($rc, 2, "unreachable Redis: $cmd->[0] exits 2");
    like($err,
         qr/\Ajukictl:\ cannot\ connect\ to\ Redis\ at\ 127\.0\.0\.1:1:\ [^\n]+\n\z/x,
         "unreachable Redis: $cmd->[0] says so");
}

($rc, $out, $err) = jk('status', '--redis', "unix:$dir/nosuch.sock");
is($rc, 2, 'unreachable unix socket exits 2');

$redis->cmd('FLUSHDB');

# --- watch ---

use Time::HiRes ();

my $chan = 'juki:alerts';

sub numsub { return $redis->cmd('PUBSUB', 'NUMSUB', $chan)->[1] }

# until N clients are subscribed (at most 10 s)
sub wait_numsub {
    my ($want) = @_;
    for (1 .. 200) {
        return 1 if numsub() == $want;
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

# jukictl watch in the background, its stdout on a pipe; returns the pid
# and the reading end once it is subscribed (or has exited)
sub watch_start {
    my (@args) = @_;
    wait_numsub(0) or die 'a subscriber is left over';
    pipe my $r, my $w or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        $ENV{JUKI_REDIS} = "$host:$port";
        $ENV{JUKI_REDIS_DB} = $db;
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER);
        JukiRef::role_env(@args);
        open STDOUT, '>&', $w or die;
        open STDERR, '>', "$dir/watch.err" or die;
        exec $bin, 'watch', @args or exit 127;
    }
    close $w;
    for (1 .. 200) {
        last if numsub() == 1 || waitpid($pid, POSIX::WNOHANG()) == $pid;
        Time::HiRes::sleep(0.05);
    }
    return ($pid, $r);
}

# all of its output, its exit status (-1 when killed by a signal) and
# stderr; killed after 15 s
sub watch_end {
    my ($pid, $r) = @_;
    local $SIG{ALRM} = sub { kill 'KILL', $pid };
    alarm 15;
    my $out = do { local $/; <$r> } // '';
    close $r;
    waitpid $pid, 0;
    alarm 0;
    my $rc = $? & 127 ? -1 : $? >> 8;
    open my $e, '<', "$dir/watch.err" or die;
    my $err = do { local $/; <$e> } // '';
    return ($rc, $out, $err);
}

sub publish { return $redis->cmd('PUBLISH', $chan, $_[0]) }

my $alert1 = '{"time":1795690516811,"node":"gw-1","agency":"pension-service",'
           . '"operator":"op-7","rule":"distinct_subjects","count":101,'
           . '"threshold":100,"window_s":3600,"action":"stop_operator",'
           . '"dry_run":false}';
my $alert2 = '{"time":1795690516999,"node":"gw-2","agency":"city-a",'
           . '"rule":"denials","count":51,"threshold":50,"window_s":600,'
           . '"action":"stop_agency","dry_run":true,'
           . '"extra":{"nested":[1,"}\"]",{"a":null}]}}';

my ($pid, $fh) = watch_start('--count', 2, '--format', 'json', '--timeout',
                             10);
is(numsub(), 1, 'watch: subscribed to juki:alerts');
is(publish($alert1), 1, 'watch: the first alert is received');
is(publish($alert2), 1, 'watch: the second alert is received');
($rc, $out, $err) = watch_end($pid, $fh);
is($rc, 0, 'watch --count 2 --format json: exit 0') or diag $err;
is($out, "$alert1\n$alert2\n", 'watch --format json: verbatim, one a line');
is($err, '', 'watch: nothing on stderr');

($pid, $fh) = watch_start('--count', 2, '--timeout', 10);
publish($alert1);
publish($alert2);
($rc, $out, $err) = watch_end($pid, $fh);
is($rc, 0, 'watch --format text: exit 0') or diag $err;
is($out, '2026-11-26T10:55:16.811Z ALERT distinct_subjects'
         . ' agency=pension-service operator=op-7 count=101 threshold=100'
         . " window=3600s action=stop_operator\n"
         . '2026-11-26T10:55:16.999Z ALERT denials agency=city-a count=51'
         . " threshold=50 window=600s action=stop_agency DRY RUN\n",
   'watch --format text: one line an alert, DRY RUN, no operator');

($pid, $fh) = watch_start('--count', 4, '--format', 'text', '--timeout',
                          10);
publish('not json');
publish('{"rule":"x",');
publish("[1,2]\e[2J");
publish('{"rule":"odd","agency":"a\u001b\"b","fields":"may grow"}');
($rc, $out, $err) = watch_end($pid, $fh);
is($rc, 0, 'watch: malformed messages: exit 0') or diag $err;
my @wl = split /\n/, $out;
is_deeply([ @wl[0 .. 2] ], [ 'malformed: not json', 'malformed: {"rule":"x",',
                             'malformed: [1,2]\x1b[2J' ],
          'watch: malformed messages printed with a prefix, escaped');
like($wl[3], qr/^\d{4}-\d\d-\d\dT[\d:.]+Z ALERT odd agency=a\\x1b"b$/,
     'watch: an alert without time or counts, its escapes decoded, then'
     . ' escaped for the terminal');

($pid, $fh) = watch_start('--count', 1, '--format', 'json', '--timeout',
                          10);
publish(qq({\n  "rule": "pretty"\r\n}));
($rc, $out) = watch_end($pid, $fh);
is($out, qq({   "rule": "pretty"  }\n), 'watch --format json: one line');

my $t0 = Time::HiRes::time();
($rc, $out, $err) = jk('watch', '--timeout', 1);
my $took = Time::HiRes::time() - $t0;
is($rc, 0, 'watch --timeout 1: exit 0') or diag $err;
ok($took >= 0.9 && $took < 1.5, "watch --timeout 1: took $took s");
is($out, '', 'watch --timeout 1: no alerts, no output');

for my $sig (qw(TERM INT)) {
    ($pid, $fh) = watch_start('--timeout', 10);
    $t0 = Time::HiRes::time();
    kill $sig, $pid;
    ($rc, $out, $err) = watch_end($pid, $fh);
    is($rc, 0, "watch: SIG$sig exits 0") or diag $err;
    ok(Time::HiRes::time() - $t0 < 1, "watch: SIG$sig at once");
}

($pid, $fh) = watch_start('--timeout', 10);
$redis->cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
($rc, $out, $err) = watch_end($pid, $fh);
is($rc, 2, 'watch: lost connection exits 2');
like($err, qr/\Ajukictl: lost the connection to Redis at [^\n]+\n\z/,
     'watch: lost connection: one line');

($rc, $out, $err) = jk('watch', '--redis', '127.0.0.1:1', '--timeout', 1);
is($rc, 2, 'watch: unreachable Redis exits 2');
like($err,
     qr/\Ajukictl:\ cannot\ connect\ to\ Redis\ at\ 127\.0\.0\.1:1:\ [^\n]+\n\z/x,
     'watch: unreachable Redis says so');

for my $case ([ '--count', 0 ], [ '--count', 'x' ], [ '--timeout', 0 ],
              [ '--timeout', '-1' ], [ '--format', 'md' ]) {
    ($rc, $out, $err) = jk('watch', @$case);
    is($rc, 2, "watch @$case: usage error");
    like($err, qr/\Ajukictl: [^\n]+\n\z/, "watch @$case: one line");
}

done_testing();
