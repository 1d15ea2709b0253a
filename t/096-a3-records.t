# The harness's A3 reader (t/juki/JukiTest.pm: a3_decode, audit_records,
# trail_problems), on hand-built elements RPUSHed into the real test Redis:
# the byte layout of docs/audit.md built here by hand, the
# hashes the module tests read, and each kind of tampering found.  No
# gateway needed.

use strict;
use warnings;
use lib 't/juki';
use Test::More;
use Digest::SHA qw(hmac_sha256 sha256);
use JukiTest;

my $admin = JukiTest::Conn->new(user => 'juki-admin');
my $AG = 'pension-service';
my $L  = "juki:{$AG}:audit";
my $U  = 'juki:{_}:audit';

# ---- the layout, by hand: a W record, byte for byte
my ($kmac, undef, $kid) = JukiTest::a3_keyfile();
my $w1 = '9f3c2a1b0d4e5f60';
my $ts = 1764806400123;                        # 2025-12-04, in ms
my $wbody = 'W' . pack('H*', $w1)
          . pack('nN', $ts >> 32, $ts & 0xffffffff) . $kid
          . chr(9) . 'test-node' . chr(1);
my $wmac = substr(hmac_sha256('juki-v3' . chr(1) . '_' . ("\0" x 16) . $wbody,
                              $kmac), 0, 16);
my %W = (_type => 'W', writer => $w1, ts => $ts, kid => unpack('H*', $kid),
         node => 'test-node', role => 1, agency => '');
is(unpack('H*', JukiTest::a3_encode(\%W)), unpack('H*', $wbody . $wmac),
   'encoder: a W record, byte for byte');
is(JukiTest::a3_varint(0), "\0", 'varint 0');
is(unpack('H*', JukiTest::a3_varint(300)), 'ac02', 'varint 300 (LEB128)');
is(unpack('H*', JukiTest::a3_varint(2**40)), '808080808020',
   'varint 2^40');

# ---- a writer's chain: W, A (Redis: allow), A (gateway: bad_purpose),
# C of the first, S; and a jukictl writer's W and K
my $cert = substr(unpack('H*', sha256('certificate der')), 0, 32);
my %A1 = (_type => 'A', writer => $w1, seq => 1, ts => $ts + 1,
          kind => 'national', cert => $cert,
          subject => JukiTest::pseudonym('11122233344'), operator => 'op-1',
          purpose => 'pension.benefit', method => 'GET',
          uri => '/v1/residents/', gdecision => 0, decision => 'allow');
my %A2 = (_type => 'A', writer => $w1, seq => 2, ts => $ts + 2,
          kind => 'national', cert => $cert, subject => '',
          operator => 'op-1', purpose => 'no.such', method => 'GET',
          uri => '/v1/x', gdecision => 19, decision => 'deny:bad_purpose');
my %C1 = (_type => 'C', writer => $w1, seq => 3, ts => $ts + 5,
          awriter => $w1, aseq => 1, decision => 'allow', status => 200,
          bytes => 1234, upstream_ms => 0);
my %S1 = (_type => 'S', writer => $w1, seq => 4, ts => $ts + 1000,
          cause => 'unknown_agency', second => int($ts / 1000),
          recorded => 20, suppressed => 300);
my $w2 = '0123456789abcdef';
my %W2 = (%W, writer => $w2, role => 2, node => 'ops-host');
my %K1 = (_type => 'K', writer => $w2, seq => 1, ts => $ts + 7,
          action => 'stop', scope => 'agency', operator => '',
          reason => 'suspected leak', actor => 'alice');

# encode(RECORD, LIST AGENCY, PREV RECORD'S ELEMENT): the element
sub enc {
    my ($r, $ag, $prev, %o) = @_;
    my $p = $prev ? substr($prev, JukiTest::a3_decode($prev)->{_body_len}, 16)
                  : "\0" x 16;
    return JukiTest::a3_encode($r, agency => $ag, prev16 => $p, %o);
}

my %e;
$e{W}  = enc(\%W, '_');
$e{A1} = enc(\%A1, $AG, $e{W});
$e{A2} = enc(\%A2, $AG, $e{A1});
$e{C1} = enc(\%C1, $AG, $e{A2});
$e{S1} = enc(\%S1, '_', $e{C1});
$e{W2} = enc(\%W2, '_');
$e{K1} = enc(\%K1, $AG, $e{W2});

sub load {
    my %lists = @_;
    $admin->cmd('FLUSHALL');
    for my $k (sort keys %lists) {
        my $r = $admin->cmd('RPUSH', $k, @{$lists{$k}});
        die 'RPUSH: ' . $r->msg . "\n" if ref $r;
    }
}

sub good {
    load($U => [@e{qw(W W2 S1)}], $L => [@e{qw(A1 A2 C1 K1)}]);
}

sub problems {
    my ($bad, $unconfirmed) = JukiTest::trail_problems(audit_records());
    return ($bad, $unconfirmed);
}

good();
my @r = audit_records();
is(scalar @r, 7, 'seven records read');
my %by = map { (($_->{phase} // 'audit') . ' ' . ($_->{own_id} // $_->{id})
                => $_) } @r;
my $a = $by{"audit $w1-1"};
ok($a, 'the A record, by its audit id WRITER-SEQ') or BAIL_OUT('no A');
is($a->{_stream}, $L, 'A: _stream is its list');
is($a->{_id}, 0, 'A: _id is its logical index');
is($a->{agency}, $AG, 'A: agency from the list key');
is($a->{node}, 'test-node', "A: node from its writer's W record");
is($a->{kid}, unpack('H*', $kid), "A: kid from its writer's W record");
is($a->{ts}, $ts + 1, 'A: ts');
is($a->{seq}, 1, 'A: seq');
is($a->{writer}, $w1, 'A: writer (16 hex)');
is($a->{kind}, 'national', 'A: kind as text');
is($a->{cert}, $cert, 'A: cert, 32 hex');
is($a->{subject}, JukiTest::pseudonym('11122233344'), 'A: subject, 32 hex');
is(join('|', @$a{qw(operator purpose method uri)}),
   'op-1|pension.benefit|GET|/v1/residents/', 'A: operator purpose method uri');
is($a->{decision}, 'allow', 'A: the decision byte, as text');
ok(!exists $a->{phase}, 'A: no phase (as an A2 audit record)');
is($a->{prev}, $by{"writer $w1-0"}{mac}, "A: prev is its W record's mac");
ok(JukiTest::check_record($a), 'A: check_record');
my $g = $by{"audit $w1-2"};
is($g->{decision}, 'deny:bad_purpose', 'A (gateway): decision');
is($g->{subject}, '', 'A (gateway): no subject');
ok(JukiTest::check_record($g), 'A (gateway): check_record');
my $c = $by{"done $w1-3"};
is($c->{id}, "$w1-1", 'C: id is the audit id it completes');
is(join('|', @$c{qw(decision status bytes upstream_ms)}), 'allow|200|1234|0',
   'C: decision status bytes upstream_ms');
ok(JukiTest::check_completion($c), 'C: check_completion');
my $s = $by{"summary $w1-4"};
is(join('|', @$s{qw(_stream cause second recorded suppressed)}),
   "$U|unknown_agency|" . int($ts / 1000) . '|20|300', 'S: its fields');
ok(JukiTest::check_summary($s), 'S: check_summary');
my $k = $by{"control $w2-1"};
is(join('|', @$k{qw(action scope reason actor node)}),
   'stop|agency|suspected leak|alice|ops-host', 'K: its fields');
ok(JukiTest::check_control($k), 'K: check_control');
my ($bad, $unc) = problems();
is_deeply($bad, [], 'the whole trail: no problem') or diag explain $bad;
is($unc, 0, 'every Redis decision confirmed');

# a record whose mac is taken over a field edited in the hash shows
{
    my %x = %$a;
    $x{uri} = '/v1/other';
    ok(!JukiTest::check_record(\%x), 'an edited field fails check_record');
    %x = %$c;
    $x{status} = 500;
    ok(!JukiTest::check_completion(\%x), 'an edited C fails check_completion');
}

# ---- tampering, each found
sub found {
    my ($name, $re, %lists) = @_;
    load(%lists);
    my ($b) = problems();
    ok((grep { /$re/ } @$b), $name) or diag explain $b;
}

(my $flip = $e{A1}) =~ s/\x01\z/\x02/;
found('a flipped decision byte: its completion disagrees',
      qr/decision deny:stopped, completion says allow/,
      $U => [@e{qw(W W2 S1)}], $L => [$flip, @e{qw(A2 C1 K1)}]);
found('a deleted record: a seq gap', qr/writer \Q$w1\E: seq gap at seq 3/,
      $U => [@e{qw(W W2 S1)}], $L => [@e{qw(A1 C1 K1)}]);
found('a deleted W record', qr/writer \Q$w2\E: (no W record|seq gap)/,
      $U => [@e{qw(W S1)}], $L => [@e{qw(A1 A2 C1 K1)}]);
found('a record moved to another agency: its mac fails', qr/audit mac/,
      $U => [@e{qw(W W2 S1)}], $L => [@e{qw(A1 C1 K1)}],
      'juki:{shibuya-city}:audit' => [$e{A2}]);
(my $edit = $e{A1}) =~ s{/v1/residents/}{/v1/residentz/};
found('an edited byte: its mac fails', qr/\Q$w1\E-1: audit mac/,
      $U => [@e{qw(W W2 S1)}], $L => [$edit, @e{qw(A2 C1 K1)}]);
found('a completion before its record', qr/completion before its audit/,
      $U => [@e{qw(W W2 S1)}], $L => [@e{qw(C1 A1 A2 K1)}]);
found('a repeated record', qr/seq repeat/,
      $U => [@e{qw(W W2 S1)}], $L => [@e{qw(A1 A2 A2 C1 K1)}]);
my %C2 = (%C1, seq => 5, ts => $ts + 2000);
found('a second completion', qr/second completion/,
      $U => [@e{qw(W W2 S1)}],
      $L => [@e{qw(A1 A2 C1 K1)}, enc(\%C2, $AG, $e{S1})]);
{
    load($U => [@e{qw(W W2)}], $L => [@e{qw(A1 A2 K1)}]);
    my ($b, $u) = problems();
    is_deeply($b, [], 'no completion: not a break');
    is($u, 1, 'no completion: one unconfirmed');
}
my $fake = 'A' . substr($e{A2}, 1, -1) . "\x01";
found('a gateway decision turned into allow: does not decode',
      qr/decision 1 is not gdecision 19/,
      $U => [@e{qw(W W2 S1)}], $L => [@e{qw(A1)}, $fake, @e{qw(C1 K1)}]);
found('trailing bytes', qr/does not decode: trailing bytes/,
      $U => [@e{qw(W W2)}, $e{S1} . "\0"], $L => [@e{qw(A1 A2 C1 K1)}]);
found('a truncated element', qr/does not decode: (truncated|str past the end)/,
      $U => [@e{qw(W W2 S1)}], $L => [substr($e{A1}, 0, 30)]);
found('an unknown type', qr/does not decode: unknown type/,
      $U => [@e{qw(W W2 S1)}], $L => ['X' . substr($e{A1}, 1)]);
{
    # seq 1 written non-minimally (0x81 0x00) is refused
    my $nm = substr($e{A1}, 0, 9) . "\x81\x00" . substr($e{A1}, 10);
    is(JukiTest::a3_decode($nm)->{_error}, 'varint not minimal',
       'a non-minimal varint does not decode');
    my $long = 'C' . ("\0" x 8) . ("\x80" x 10) . "\x01";
    is(JukiTest::a3_decode($long)->{_error}, 'varint longer than 10 bytes',
       'a varint of 11 bytes does not decode');
}
{
    my $dir = juki_env('TEST_NGINX_REDIS_DIR');
    open(my $fh, '>:raw', "$dir/other.key") or die $!;
    print $fh 'another key, another kid: ' x 4;
    close $fh;
    my ($om) = JukiTest::a3_keyfile("$dir/other.key");
    my %Wo = (%W, writer => 'feedfacefeedface',
              kid => JukiTest::a3_kid("$dir/other.key"));
    found('a writer of another key: its kid is not the key\'s',
          qr/feedfacefeedface-0: kid \S+ is not the key's/,
          $U => [@e{qw(W W2 S1)}, JukiTest::a3_encode(\%Wo, agency => '_',
                                                      kmac => $om)],
          $L => [@e{qw(A1 A2 C1 K1)}]);
}

$admin->cmd('FLUSHALL');
done_testing();
