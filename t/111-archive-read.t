#!/usr/bin/perl

# jukictl disclose --postgres: archive + Redis read as one trail, against
# a private Redis (the ACL of conf/juki-users.acl.in) and a private
# PostgreSQL (scripts/pg.sh).  The answers before archiving, after
# archiving with the hot window (Redis and the archive overlap) and after
# --keep 0 (all in the archive) are identical; a tampered archived row
# of the resident is left out with exit 1, named; the resident's rows are
# read by the index (EXPLAIN of the prepared statement).  The timing of
# disclose on this data set is printed, not asserted.
#
# Env: TEST_ARCHREAD_REDIS_PORT (17730), TEST_ARCHREAD_PG_PORT (17740),
# JUKICTL (binary, default build/jukictl, else jukictl/jukictl).
use strict;
use warnings;

use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use lib dirname(__FILE__) . '/jukictl';
use JukiRef;

my $root = dirname(__FILE__) . '/..';
my ($initdb) = grep { -x } glob('/usr/lib/postgresql/*/bin/initdb');
plan skip_all => 'PostgreSQL binaries missing (/usr/lib/postgresql/*/bin;'
               . ' scripts/deps.sh test installs postgresql)'
    unless $initdb;
system('sh', '-c', 'command -v redis-server >/dev/null') == 0
    or plan skip_all => 'redis-server missing (scripts/deps.sh test)';
system('sh', '-c', 'command -v psql >/dev/null') == 0
    or plan skip_all => 'psql missing (scripts/deps.sh test)';

my $rport = $ENV{TEST_ARCHREAD_REDIS_PORT} || 17730;
my $pport = $ENV{TEST_ARCHREAD_PG_PORT} || 17740;
my $bin = $ENV{JUKICTL}
    || (-x "$root/build/jukictl" ? "$root/build/jukictl"
                                 : "$root/jukictl/jukictl");
-x $bin or BAIL_OUT("$bin is not built");

my $dir = tempdir('juki-archread.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0711, $dir;               # PostgreSQL runs as postgres when root

$ENV{REDIS_ACL} = "$root/conf/juki-users.acl.in";
$ENV{REDIS_SECRETS} = "$dir/secrets";
$ENV{REDIS_FUNCTION} = 0;
$ENV{TEST_NGINX_REDIS_SECRETS} = "$dir/secrets";

sub sh {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "$cmd: $out" if $?;
    return $out;
}

sh("$root/scripts/redis.sh start $dir/redis $rport");
my $dsn = sh("$root/scripts/pg.sh start $dir/pg $pport");
chomp $dsn;

END {
    if (defined $dir && -d $dir) {
        system("$root/scripts/redis.sh stop $dir/redis $rport"
               . " >/dev/null 2>&1");
        system("$root/scripts/pg.sh stop $dir/pg $pport >/dev/null 2>&1");
    }
}

sub write_file {
    my ($name, $data) = @_;
    open my $f, '>', "$dir/$name" or die $!;
    binmode $f;
    print $f $data;
    close $f;
    return "$dir/$name";
}

my $raw = join '', map { chr(($_ * 13 + 5) % 256) } 1 .. 32;
my $keyfile = write_file('audit.key', $raw);
my $key = JukiRef::key($raw);
sh("openssl genpkey -algorithm ED25519 -out $dir/sign.pem");
sh("openssl pkey -in $dir/sign.pem -pubout -out $dir/pub.pem");

my $redis = JukiRef->connect('127.0.0.1', $rport, 0);

sub psql {
    my ($sql) = @_;
    open my $f, '>', "$dir/q.sql" or die $!;
    print $f $sql;
    close $f;
    my $out = `psql -X -q -t -A -v ON_ERROR_STOP=1 "$dsn" -f $dir/q.sql 2>&1`;
    die "psql: $out" if $?;
    chomp $out;
    return $out;
}


# run jukictl as ROLE with STDIN (undef: /dev/null); PG: JUKI_POSTGRES
# set; returns (exit status, stdout, stderr, seconds)
sub jk {
    my ($role, $pg, $stdin, @args) = @_;
    write_file('in', $stdin // '');
    my $t0 = time;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "127.0.0.1:$rport";
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER JUKI_REDIS_DB JUKI_POSTGRES);
        $ENV{JUKI_POSTGRES} = $dsn if $pg;
        $ENV{JUKI_REDIS_USER} = $role;
        $ENV{JUKI_REDIS_PASSWORD} = JukiRef::secret($role);
        open STDIN, '<', "$dir/in" or die;
        open STDOUT, '>', "$dir/out" or die;
        open STDERR, '>', "$dir/err" or die;
        exec $bin, @args or exit 127;
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    my $dt = time - $t0;
    local $/;
    open my $o, '<', "$dir/out" or die;
    open my $e, '<', "$dir/err" or die;
    return ($rc, scalar(<$o> // ''), scalar(<$e> // ''), $dt);
}

my @archive = ('archive', '--key', $keyfile, '--signing-key',
               "$dir/sign.pem", '--checkpoint-file', "$dir/ck");

my $now_ms = int(time() * 1000);
my @agencies = map { [ "agency-$_", 'municipality',
                       [ 'tax.local', 'pension.benefit' ] ] } 1 .. 6;
my @codes = map { sprintf('%012d', 8000000 + $_ * 7919) } 1 .. 40;

# two days of requests, 44 hours apart: the hot window (24h) splits them
srand(11);
my @w = map { JukiRef::writer(sprintf('%016x', 0xb000 + $_), $key) } 0 .. 3;
my $recs = [];
for my $d (0, 1) {
    # day 0 leaves the last completion of each writer unwritten
    push @$recs, @{ JukiRef::trail(requests => 400, writers => \@w,
                                   agencies => \@agencies, codes => \@codes,
                                   summaries => 1, owe => $d == 0,
                                   start_ms => $now_ms - 46 * 3600000
                                               + $d * 44 * 3600000) };
}
my $nrec = @$recs;
$redis->cmd('FLUSHALL');
$redis->load($recs);

# the A records Redis decided whose completion is owed: the last of
# each writer on day 0
my (%owed, %ownc);
for my $r (@$recs) {
    last if JukiRef::decode($r->{el})->{ts} > $now_ms - 24 * 3600000;
    if ($r->{type} eq 'A' && JukiRef::redis_decided($r->{decision})) {
        $owed{ $r->{writer} } = $r;
    } elsif ($r->{type} eq 'C') {
        delete $owed{ $r->{writer} }
            if $owed{ $r->{writer} }
               && JukiRef::decode($r->{el})->{aseq}
                  == $owed{ $r->{writer} }{seq};
    }
}
my @owed = values %owed;
ok(@owed > 0, 'the trail owes completions (' . @owed . ')');

my %n;
for my $r (@$recs) {
    $n{ $r->{resident} }++ if $r->{type} eq 'A' && defined $r->{resident};
}
my %seen;
my @who = grep { !$seen{$_}++ }
          (@codes[0 .. 5], map { $_->{resident} } @owed);

my ($rc, $out, $err, $dt);

sub disclose_all {
    my ($pg, $what, @more) = @_;
    my %ans;
    my @t;
    for my $c (@who) {
        ($rc, $out, $err, $dt) = jk('juki-reader', $pg, "$c\n", 'disclose',
                                    '--format', 'json', '--key', $keyfile,
                                    @more);
        is($rc, 0, "disclose $what: exit 0") or diag $err;
        $ans{$c} = $out;
        push @t, $dt;
    }
    @t = sort { $a <=> $b } @t;
    diag(sprintf("disclose %s: %d residents, %.1f .. %.1f ms each"
                 . " (%d records)", $what, scalar @t, 1000 * $t[0],
                 1000 * $t[-1], $nrec));
    return \%ans;
}

my $before = disclose_all(0, 'before archiving');
my $total = 0;
for my $c (@who) {
    my ($count) = $before->{$c} =~ /"count": (\d+)/;
    is($count, $n{$c} // 0, "before: the resident's accesses");
    $total += $count;
}
ok($total > 20, "before: the residents have accesses ($total)");

($rc, $out, $err) = jk('juki-archiver', 0, undef, @archive,
                       '--postgres', $dsn);
is($rc, 0, 'archive with the hot window: exit 0') or diag $err;
my ($left) = (0);
for my $k (@{ $redis->cmd('KEYS', 'juki:{*}:audit') }) {
    $left += $redis->cmd('LLEN', $k);
}
ok($left > 0 && $left < $nrec,
   "archive: the hot window ($left of $nrec) stays in Redis");

my $hot = disclose_all(1, 'archive + hot window');
is_deeply($hot, $before, 'disclose --postgres with the hot window:'
          . ' the answers before archiving');

# a window of dates, from both stores
my @win = ('--from', substr(scalar(gmtime), 0, 0)
           . sprintf('%04d-%02d-%02d', (gmtime($now_ms / 1000 - 86400))[5]
                     + 1900, (gmtime($now_ms / 1000 - 86400))[4] + 1,
                     (gmtime($now_ms / 1000 - 86400))[3]));
my $wbefore = disclose_all(1, 'window, archive + hot window', @win);

($rc, $out, $err) = jk('juki-archiver', 0, undef, @archive,
                       '--postgres', $dsn, '--keep', '0');
is($rc, 0, 'archive --keep 0: exit 0') or diag $err;
$left = 0;
for my $k (@{ $redis->cmd('KEYS', 'juki:{*}:audit') }) {
    $left += $redis->cmd('LLEN', $k);
}
is($left, 0, 'archive --keep 0: Redis emptied');

my $all = disclose_all(1, 'archive only');
is_deeply($all, $before, 'disclose --postgres after --keep 0: the answers'
          . ' before archiving');
is_deeply(disclose_all(1, 'window, archive only', @win), $wbefore,
          'disclose --postgres --from: the same window from either store');

($rc, $out, $err) = jk('juki-reader', 0, "$who[0]\n", 'disclose',
                       '--format', 'json', '--key', $keyfile);
like($out, qr/"count": 0,/, 'disclose without --postgres: Redis only,'
     . ' now empty');

# --- completions written after their audit records were archived ---

for my $c (@owed) {
    like($before->{ $c->{resident} }, qr/"unconfirmed": [1-9]/,
         'an owed completion: unconfirmed before');
}
my %wr = map { $_->{name} => $_ } @w;
$redis->load([ map { JukiRef::record($wr{ $_->{writer} }, 'C',
                                     agency => $_->{agency}, ts => $now_ms,
                                     aseq => $_->{seq},
                                     decision => $_->{decision},
                                     status => 200, bytes => 1) } @owed ]);
my $late = disclose_all(1, 'archived A, C in Redis');
for my $c (@owed) {
    my $r = $c->{resident};
    my ($u0) = $before->{$r} =~ /"unconfirmed": (\d+)/;
    my $k = grep { $_->{resident} eq $r } @owed;
    like($late->{$r}, qr/"unconfirmed": @{[ $u0 - $k ]},/,
         'disclose --postgres: the archived decision confirmed by its'
         . ' completion in Redis');
}
($rc, $out, $err) = jk('juki-reader', 0, undef, 'verify', '--key',
                       $keyfile);
is($rc, 0, 'verify --key of Redis alone: exit 0') or diag $err;
like($out, qr/^not checkable: \d+ records/m,
     'verify --key of Redis alone: the completions not checkable');
($rc, $out, $err) = jk('juki-reader', 0, undef, 'verify', '--key',
                       $keyfile, '--postgres', $dsn);
is($rc, 0, 'verify --key --postgres: the completions checked against the'
   . ' archive') or diag $err;
unlike($out, qr/not checkable/, 'verify --key --postgres: all checkable');

# --- the index ---

my $pseudo = unpack('H*', JukiRef::pseudonym($key, $who[0]));
my $plan = psql("PREPARE p(bytea, timestamptz, timestamptz) AS"
                . " SELECT list, idx, raw FROM juki_records"
                . " WHERE pseudonym = \$1 AND ts >= \$2::timestamptz"
                . " AND ts <= \$3::timestamptz;"
                . " EXPLAIN EXECUTE p('\\x$pseudo',"
                . " '1970-01-01T00:00:00.000Z', 'infinity');"
                . " SET plan_cache_mode = force_generic_plan;"
                . " EXPLAIN EXECUTE p('\\x$pseudo',"
                . " '1970-01-01T00:00:00.000Z', 'infinity')");
like($plan, qr/Index (Only )?Scan .*pseudonym/,
     'disclose: the prepared statement reads the index on (pseudonym, ts)')
    or diag $plan;
unlike($plan, qr/Seq Scan/, 'disclose: no sequential scan') or diag $plan;

# --- a tampered archived row of the resident ---

my $row = psql("SELECT list || ' ' || idx FROM juki_records"
               . " WHERE pseudonym = '\\x$pseudo' ORDER BY ts LIMIT 1");
my ($tl, $ti) = split / /, $row;
psql("UPDATE juki_records SET raw = set_byte(raw, length(raw) - 2,"
     . " get_byte(raw, length(raw) - 2) # 1)"
     . " WHERE list = '$tl' AND idx = $ti");
($rc, $out, $err) = jk('juki-reader', 1, "$who[0]\n", 'disclose',
                       '--format', 'json', '--key', $keyfile);
is($rc, 1, 'disclose of a tampered archived row: exit 1');
like($err, qr/^jukictl: disclose: archived \Q$tl\E element $ti: bad mac/m,
     'disclose: names the tampered row') or diag $err;
like($err, qr/1 record failed verification and is left out/,
     'disclose: says it was left out') or diag $err;
my ($c0) = $before->{ $who[0] } =~ /"count": (\d+)/;
like($out, qr/"count": @{[ $c0 - 1 ]},/, 'disclose: the row is left out');
like($out, qr/"unverified": 1,/, 'disclose: counted as unverified');
unlike($out . $err, qr/\Q$who[0]\E/, 'disclose: the code is never shown');

# a derived column moved onto another resident's pseudonym
psql("UPDATE juki_records SET raw = set_byte(raw, length(raw) - 2,"
     . " get_byte(raw, length(raw) - 2) # 1)"
     . " WHERE list = '$tl' AND idx = $ti");
my $p1 = unpack('H*', JukiRef::pseudonym($key, $who[1]));
my $row1 = psql("SELECT list || ' ' || idx FROM juki_records"
                . " WHERE pseudonym = '\\x$p1' ORDER BY ts LIMIT 1");
my ($ml, $mi) = split / /, $row1;
psql("UPDATE juki_records SET pseudonym = '\\x$pseudo'"
     . " WHERE list = '$ml' AND idx = $mi");
($rc, $out, $err) = jk('juki-reader', 1, "$who[0]\n", 'disclose',
                       '--format', 'json', '--key', $keyfile);
is($rc, 1, 'disclose: a row moved onto the resident: exit 1');
like($err, qr/archived \Q$ml\E element $mi: its bytes are not the/,
     'disclose: names the moved row') or diag $err;
like($out, qr/"count": $c0,/, 'disclose: the moved row is not listed');

done_testing();
