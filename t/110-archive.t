#!/usr/bin/perl

# jukictl archive and verify --public-key against a private Redis (with
# the ACL of conf/juki-users.acl.in, the archiver as juki-archiver) and a
# private PostgreSQL (scripts/pg.sh): archive -> Redis trimmed to the hot
# window -> verify still ok; verify --public-key ok; each tamper in
# PostgreSQL named; a break in Redis stops the archive there; a history
# rewritten after a checkpoint was handed out; kill -9 of the archiver at
# random moments loses and duplicates nothing.
#
# Env: TEST_ARCHIVE_REDIS_PORT (17710), TEST_ARCHIVE_PG_PORT (17720),
# JUKICTL (binary, default build/jukictl, else jukictl/jukictl),
# TEST_ARCHIVE_KILLS (25).

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

my $rport = $ENV{TEST_ARCHIVE_REDIS_PORT} || 17710;
my $pport = $ENV{TEST_ARCHIVE_PG_PORT} || 17720;
my $bin = $ENV{JUKICTL}
    || (-x "$root/build/jukictl" ? "$root/build/jukictl"
                                 : "$root/jukictl/jukictl");
-x $bin or BAIL_OUT("$bin is not built");
my $kills = $ENV{TEST_ARCHIVE_KILLS} || 25;

my $dir = tempdir('juki-archive.XXXXXX', TMPDIR => 1, CLEANUP => 1);
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
sh("openssl genpkey -algorithm ED25519 -out $dir/other.pem");
sh("openssl pkey -in $dir/other.pem -pubout -out $dir/other.pub");

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

sub reset_pg {
    psql('DROP TABLE IF EXISTS juki_records, juki_cursor, juki_heads,'
         . ' juki_counts, juki_checkpoints, juki_pending, bak CASCADE');
}

# run jukictl as ROLE; returns (exit status, stdout, stderr)
sub jk {
    my ($role, @args) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "127.0.0.1:$rport";
        $ENV{JUKI_POSTGRES} = $dsn;
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER JUKI_REDIS_DB);
        if ($role) {
            $ENV{JUKI_REDIS_USER} = $role;
            $ENV{JUKI_REDIS_PASSWORD} = JukiRef::secret($role);
        } else {
            delete $ENV{JUKI_REDIS};    # the auditor: no Redis at all
        }
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

my @archive = ('archive', '--key', $keyfile, '--signing-key',
               "$dir/sign.pem", '--checkpoint-file', "$dir/ck");
my @pubverify = ('verify', '--public-key', "$dir/pub.pem");

my $day_ms = 86400000;
my $now_ms = int(time() * 1000);
my @agencies = map { [ "agency-$_", 'municipality',
                       [ 'tax.local', 'pension.benefit' ] ] } 1 .. 6;
my @codes = map { sprintf('%012d', 7000000 + $_ * 7919) } 1 .. 300;

sub trail {
    my (%o) = @_;
    srand($o{seed});
    my @w = map { JukiRef::writer(sprintf('%016x', $o{wbase} + $_), $key) }
            0 .. ($o{writers} // 4) - 1;
    my @r;
    for my $d (0 .. $#{ $o{days} }) {
        push @r, @{ JukiRef::trail(requests => $o{days}[$d], writers => \@w,
                                   agencies => \@agencies, codes => \@codes,
                                   summaries => 1,
                                   start_ms => $now_ms - 46 * 3600000
                                               + $d * 44 * 3600000) };
    }
    return \@r;
}

sub redis_total {
    my ($keys) = @_;
    my ($n, $t) = (0, 0);
    for my $k (@{ $redis->cmd('KEYS', 'juki:{*}:audit') }) {
        $n += $redis->cmd('LLEN', $k);
    }
    for my $k (@{ $redis->cmd('KEYS', 'juki:{*}:trimmed') }) {
        $t += $redis->cmd('GET', $k);
    }
    return ($n, $t);
}

my ($rc, $out, $err);

# --- archive, trimmed to the hot window (24h), verify still ok ---

my $recs = trail(seed => 1, wbase => 0xa000, days => [ 300, 300 ]);
my $nrec = @$recs;
my $older = grep { JukiRef::decode($_->{el})->{ts} < time() * 1000
                                                    - $day_ms } @$recs;
$redis->cmd('FLUSHALL');
$redis->load($recs);

($rc, $out, $err) = jk('juki-reader', 'verify', '--key', $keyfile);
is($rc, 0, 'verify before archiving') or diag $err;

($rc, $out, $err) = jk('juki-archiver', @archive);
is($rc, 0, 'archive: exit 0') or diag $err;
like($out, qr/^archived: $nrec records \($nrec in all\)$/m,
     'archive: says how many it archived');
is(psql('SELECT count(*) FROM juki_records'), $nrec,
   'archive: every record is a row');
my ($left, $trimmed) = redis_total();
is($left + $trimmed, $nrec, 'archive: Redis kept + trimmed = records');
ok($trimmed > 0 && $trimmed <= $older,
   "archive: trimmed $trimmed, none of the last 24h ($older older)");
ok($left > 0, 'archive: the hot window stays in Redis');
like(psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class"
          . " WHERE relname ~ '^juki_records_[0-9]{6}\$'"),
     qr/^juki_records_\d{6}(,juki_records_\d{6})+$/,
     'archive: monthly partitions created');
is(psql("SELECT sum(n) FROM juki_counts"),
   scalar(grep { $_->{el} =~ /\AA/ } @$recs),
   'archive: the counts hold every A record');
is(psql("SELECT count(*) FROM (SELECT extract(year FROM ts)::int AS year,"
        . " list AS agency, purpose, decision, count(*) AS n"
        . " FROM juki_records WHERE type = 'A'"
        . " GROUP BY 1, 2, 3, 4) r FULL JOIN juki_counts c"
        . " USING (year, agency, purpose, decision)"
        . " WHERE r.n IS DISTINCT FROM c.n"), 0,
   'archive: the counts are what the rows give, per year, agency, purpose'
   . ' and decision');

($rc, $out, $err) = jk('juki-reader', 'verify', '--key', $keyfile);
is($rc, 0, 'verify of the trimmed Redis: ok') or diag $err;

($rc, $out, $err) = jk(undef, @pubverify);
is($rc, 0, 'verify --public-key: ok') or diag $err;
like($out, qr/^ok: $nrec archived records in \d+ lists, 4 writers; \d+/m,
     'verify --public-key: counts');

($rc, $out, $err) = jk('juki-reader', @pubverify);
is($rc, 0, 'verify --public-key with Redis: ok') or diag $err;
like($out, qr/; Redis's trimmed counters covered$/m,
     'verify --public-key with Redis: compares the trimmed counters');

($rc, $out, $err) = jk('juki-archiver', @archive);
is($rc, 0, 'archive again: exit 0') or diag $err;
like($out, qr/^archived: 0 records/m, 'archive again: nothing new');

($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 0, 'archive --keep 0') or diag $err;
($left, $trimmed) = redis_total();
is("$left $trimmed", "0 $nrec", 'archive --keep 0: Redis emptied');
($rc, $out, $err) = jk('juki-reader', 'verify', '--key', $keyfile);
is($rc, 0, 'verify of the emptied Redis: ok') or diag $err;
is(psql('SELECT count(*) FROM juki_records'), $nrec,
   'archive --keep 0: still every record once');

($rc, $out, $err) = jk(undef, 'verify', '--public-key', "$dir/other.pub");
is($rc, 1, 'verify with another public key: exit 1');
like($err, qr/checkpoint \d+: no signature by the key given/,
     'verify with another public key: says so');

($rc, $out, $err) = jk(undef, @pubverify, '--key', $keyfile);
is($rc, 2, 'verify --public-key refuses --key');

($rc, $out, $err) = jk('juki-archiver', 'archive', '--key', $keyfile);
is($rc, 2, 'archive without --signing-key: exit 2');

# --- tampers in PostgreSQL ---

psql('CREATE TABLE bak AS SELECT * FROM juki_records');
my $ck_first = do { local $/; open my $f, '<', "$dir/ck" or die; <$f> };

sub restore {
    psql('DELETE FROM juki_records; INSERT INTO juki_records'
         . ' SELECT * FROM bak');
}

my %tamper = (
    'edit a row\'s bytes' => [
        "UPDATE juki_records SET raw = overlay(raw placing '\\x7a'::bytea"
        . " from length(raw) - 20 for 1) WHERE list = 'agency-1' AND idx = 5",
        qr/list agency-1: rows \d+\.\.\d+ do not reproduce checkpoint/ ],
    'delete a row' => [
        "DELETE FROM juki_records WHERE list = 'agency-2' AND idx = 10",
        qr/list agency-2: rows 10\.\.10 missing/ ],
    'swap two rows\' bytes' => [
        "UPDATE juki_records r SET raw = s.raw FROM juki_records s"
        . " WHERE r.list = 'agency-3' AND s.list = 'agency-3'"
        . " AND ((r.idx = 3 AND s.idx = 4) OR (r.idx = 4 AND s.idx = 3))",
        qr/list agency-3 row 3: its columns do not match its bytes/ ],
    'insert a forged row' => [
        "INSERT INTO juki_records SELECT list, (SELECT max(idx) + 1 FROM"
        . " juki_records WHERE list = 'agency-4'), ts, writer, seq, type,"
        . " pseudonym, purpose, decision, raw FROM juki_records"
        . " WHERE list = 'agency-4' AND idx = 7",
        qr/list agency-4: rows \d+\.\.\d+ are in no checkpoint/ ],
    'delete the tail' => [
        "DELETE FROM juki_records WHERE list = 'agency-5' AND idx >="
        . " (SELECT max(idx) - 2 FROM juki_records WHERE list = 'agency-5')",
        qr/names list agency-5 at \d+ rows: the archive has fewer/ ],
    'delete the newest checkpoint and the rows only it covers' => [
        "DELETE FROM juki_records WHERE list = 'agency-1' AND idx >="
        . " (SELECT max(idx) FROM juki_records WHERE list = 'agency-1');"
        . " DELETE FROM juki_checkpoints WHERE id >= (SELECT max(id) - 1"
        . " FROM juki_checkpoints)",
        qr/list agency-1: Redis trimmed \d+ records, the archive holds/,
        'juki-reader' ],
    'edit a checkpoint and the tail' => [
        "DELETE FROM juki_records WHERE list = 'agency-6' AND idx >="
        . " (SELECT max(idx) FROM juki_records WHERE list = 'agency-6');"
        . " UPDATE juki_checkpoints SET note = replace(note, 'list agency-6',"
        . " 'list agency-6 ')",
        qr/checkpoint \d+: (bad signature|malformed)/ ],
);

for my $name (sort keys %tamper) {
    my ($sql, $re, $role) = @{ $tamper{$name} };
    psql("CREATE TABLE ck_bak AS SELECT * FROM juki_checkpoints");
    psql($sql);
    ($rc, $out, $err) = jk($role, @pubverify);
    is($rc, 1, "tamper ($name): verify --public-key exit 1");
    like($err, $re, "tamper ($name): named") or diag $err;
    restore();
    psql('DELETE FROM juki_checkpoints; INSERT INTO juki_checkpoints'
         . ' SELECT * FROM ck_bak; DROP TABLE ck_bak');
    ($rc, $out, $err) = jk(undef, @pubverify);
    is($rc, 0, "tamper ($name): restored, ok again") or diag $err;
}

# a monthly partition dropped (no retention record exists yet: always a
# break)
{
    my $part = psql("SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                    . " ON c.oid = i.inhrelid JOIN pg_class p"
                    . " ON p.oid = i.inhparent WHERE p.relname ="
                    . " 'juki_records' AND EXISTS (SELECT 1 FROM"
                    . " juki_records r WHERE r.tableoid = c.oid)"
                    . " ORDER BY c.relname LIMIT 1");
    psql("ALTER TABLE juki_records DETACH PARTITION $part;"
         . " DROP TABLE $part");
    ($rc, $out, $err) = jk(undef, @pubverify);
    is($rc, 1, "tamper (partition $part dropped): exit 1");
    like($err, qr/(missing|the archive has fewer)/,
         "tamper (partition $part dropped): named") or diag $err;
}

# --- a rewritten history: a fresh archive of another trail, signed with
#     the same key, against the checkpoint file handed out earlier ---

write_file('ck-old', $ck_first);
reset_pg();
$redis->cmd('FLUSHALL');
$recs = trail(seed => 2, wbase => 0xa000, days => [ 300, 300 ]);
$redis->load($recs);
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 0, 'rewritten history: archived') or diag $err;
($rc, $out, $err) = jk(undef, @pubverify);
is($rc, 0, 'rewritten history: consistent by itself') or diag $err;
($rc, $out, $err) = jk(undef, @pubverify, '--checkpoint', "$dir/ck-old");
is($rc, 1, 'rewritten history: exit 1 with the old checkpoint file');
like($err, qr/(the checkpoint file|disagree)/,
     'rewritten history: names the checkpoint file') or diag $err;

# --- a break in Redis: nothing past it archived ---

reset_pg();
$redis->cmd('FLUSHALL');
$recs = trail(seed => 3, wbase => 0xb000, days => [ 200, 200 ]);
$redis->load($recs);
my $bad_list = 'juki:{agency-2}:audit';
my $el = $redis->cmd('LINDEX', $bad_list, 20);
substr($el, -3, 1) = chr(ord(substr($el, -3, 1)) ^ 1);
$redis->cmd('LSET', $bad_list, 20, $el);
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 1, 'a break in Redis: archive exit 1');
like($err, qr/^jukictl: archive: juki:\{agency-2\}:audit element 20 (?#
              )writer [0-9a-f]{16} seq \d+: /m, 'a break in Redis: named')
    or diag $err;
is(psql("SELECT coalesce(max(idx), -1) FROM juki_records"
        . " WHERE list = 'agency-2'"), 19,
   'a break in Redis: its list archived up to the break');
is($redis->cmd('GET', 'juki:{agency-2}:trimmed'), 20,
   'a break in Redis: trimmed up to the break only');
ok($redis->cmd('LLEN', $bad_list) > 0, 'a break in Redis: the rest kept');
($rc, $out, $err) = jk(undef, @pubverify);
is($rc, 0, 'a break in Redis: what was archived verifies') or diag $err;
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 1, 'a break in Redis: the next run stops there again');

# --- a decision flipped in Redis before its completion was written: the
#     completion, archived in a later batch, names the flip ---

reset_pg();
$redis->cmd('FLUSHALL');
$recs = trail(seed => 7, wbase => 0xe000, days => [ 100, 100 ]);
my ($ai) = grep {
    my $d = JukiRef::decode($recs->[$_]{el});
    $d->{type} eq 'A' && ($d->{decision} // '') eq 'allow'
        && $recs->[$_]{list} ne 'juki:{_}:audit' && $_ > 50
} 0 .. $#$recs;
my $ad = JukiRef::decode($recs->[$ai]{el});
$redis->load([ @$recs[0 .. $ai] ]);
my $flip = $recs->[$ai]{el};
substr($flip, -1, 1) = chr(2);                      # deny:stopped
$redis->cmd('LSET', $recs->[$ai]{list}, -1, $flip);
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 0, 'flip before its completion: the unconfirmed record archived')
    or diag $err;
is(psql("SELECT count(*) FROM juki_pending WHERE seq = $ad->{seq}"
        . " AND writer = '\\x$ad->{writer}'::bytea AND decision = 2"), 1,
   'flip before its completion: it waits in juki_pending');
$redis->load([ @$recs[$ai + 1 .. $#$recs] ]);
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 1, 'flip before its completion: the completion is a break');
like($err, qr/seq \d+: decision flip: the archived audit record (?#
              )\(seq $ad->{seq}\) says deny:stopped, its completion allow/,
     'flip before its completion: named') or diag $err;

# --- PostgreSQL down: exit 2, nothing trimmed; back up: all archived ---

reset_pg();
$redis->cmd('FLUSHALL');
$recs = trail(seed => 5, wbase => 0xd000, days => [ 100, 100 ]);
$redis->load($recs);
$nrec = @$recs;
sh("$root/scripts/pg.sh stop $dir/pg $pport");
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 2, 'PostgreSQL down: archive exit 2');
like($err, qr/^jukictl: PostgreSQL: cannot connect: /m,
     'PostgreSQL down: one line says so');
($left, $trimmed) = redis_total();
is("$left $trimmed", "$nrec 0", 'PostgreSQL down: nothing trimmed');
sh("$root/scripts/pg.sh start $dir/pg $pport");

# a trim Redis refuses (a reader's credential): the rows stay committed,
# the next run trims exactly what they cover
($rc, $out, $err) = jk('juki-reader', @archive, '--keep', '0');
is($rc, 2, 'trim refused: exit 2');
like($err, qr/NOPERM|no permissions/i, 'trim refused: says so');
is(psql('SELECT count(*) FROM juki_records'), $nrec,
   'trim refused: the rows are committed');
($left, $trimmed) = redis_total();
is("$left $trimmed", "$nrec 0", 'trim refused: nothing trimmed');
($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
is($rc, 0, 'trim refused, then the archiver: exit 0') or diag $err;
like($out, qr/^archived: 0 records/m, '... archives nothing twice');
($left, $trimmed) = redis_total();
is("$left $trimmed", "0 $nrec", '... and trims what the rows cover');

# --- --follow: archives as records arrive, stops on SIGTERM with exit 0 ---

{
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "127.0.0.1:$rport";
        $ENV{JUKI_POSTGRES} = $dsn;
        $ENV{JUKI_REDIS_USER} = 'juki-archiver';
        $ENV{JUKI_REDIS_PASSWORD} = JukiRef::secret('juki-archiver');
        open STDOUT, '>', "$dir/follow.out";
        open STDERR, '>', "$dir/follow.err";
        exec $bin, @archive, '--keep', '0', '--follow' or exit 127;
    }
    my $more = trail(seed => 6, wbase => 0xd100, days => [ 0, 50 ]);
    my $rows = 0;
    for (1 .. 300) {
        sleep 0.1;
        $rows = eval { psql('SELECT count(*) FROM juki_records') } // 0;
        last if $rows == $nrec;
    }
    $redis->load($more);
    for (1 .. 300) {
        sleep 0.1;
        $rows = psql('SELECT count(*) FROM juki_records');
        last if $rows == $nrec + @$more;
    }
    is($rows, $nrec + @$more, '--follow: archives what arrives later');
    kill 'TERM', $pid;
    waitpid $pid, 0;
    is($? >> 8, 0, '--follow: SIGTERM ends it with exit 0');
    ($rc, $out, $err) = jk(undef, @pubverify);
    is($rc, 0, '--follow: verify --public-key ok') or diag $err;
}

# --- kill -9 at random moments, then a restart: nothing lost or doubled ---

reset_pg();
$redis->cmd('FLUSHALL');
$recs = trail(seed => 4, wbase => 0xc000, writers => 8,
              days => [ 4000, 4000 ]);
$nrec = @$recs;
my @chunks;
my $per = int($nrec / $kills) + 1;
push @chunks, [ splice @$recs, 0, $per ] while @$recs;

my ($alive, $midrun, $loaded, $last) = (0, 0, 0, undef);
srand(time() ^ $$);
for my $k (1 .. $kills) {
    $last = shift @chunks // [];
    $redis->load($last) if @$last;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "127.0.0.1:$rport";
        $ENV{JUKI_POSTGRES} = $dsn;
        $ENV{JUKI_REDIS_USER} = 'juki-archiver';
        $ENV{JUKI_REDIS_PASSWORD} = JukiRef::secret('juki-archiver');
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', "$dir/kill.err";
        exec $bin, @archive, '--keep', '0', '--follow' or exit 127;
    }
    sleep(0.005 + rand(0.15));
    $alive++ if waitpid($pid, WNOHANG) == 0;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    $loaded += @{ $last };
    # the schema itself may not be there yet
    my $rows = eval { psql('SELECT count(*) FROM juki_records') } // 0;
    $midrun++ if $rows < $loaded;
}
$redis->load(shift @chunks) while @chunks;

# the killed archivers' sessions end as PostgreSQL sees the sockets close
for (1 .. 50) {
    ($rc, $out, $err) = jk('juki-archiver', @archive, '--keep', '0');
    last unless $err =~ /another archiver/;
    sleep 0.1;
}
is($rc, 0, "kill -9 x $kills ($alive while running, $midrun before its"
           . " batch committed): the restart completes") or diag $err;
is(psql('SELECT count(*) FROM juki_records'), $nrec,
   "kill -9: rows == records written ($nrec)");
is(psql('SELECT count(*) FROM (SELECT list, idx FROM juki_records'
        . ' GROUP BY list, idx HAVING count(*) > 1) d'), 0,
   'kill -9: no duplicate');
($left, $trimmed) = redis_total();
is("$left $trimmed", "0 $nrec", 'kill -9: Redis trimmed exactly once');
($rc, $out, $err) = jk(undef, @pubverify);
is($rc, 0, 'kill -9: verify --public-key ok') or diag $err;
is(psql("SELECT count(*) FROM juki_checkpoints"),
   psql("SELECT count(DISTINCT note) FROM juki_checkpoints"),
   'kill -9: checkpoints distinct');
my $kerr = '';
if (open my $f, '<', "$dir/kill.err") { local $/; $kerr = <$f> // '' }
unlike($kerr, qr/break|trimmed but never archived/,
       'kill -9: no archiver run met a break');

done_testing();
