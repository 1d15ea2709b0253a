#!/usr/bin/perl

# jukictl retention against a private Redis and PostgreSQL (as t/110):
# a trail whose records carry timestamps months and years old (the
# reference writer's start_ms: the archiver files each row by its own ts,
# so old months are old partitions; the archive refuses only ts in the
# future), archived, then the old months dropped: partitions gone, one
# signed record per month, verify --public-key exit 0; a kill between the
# detach and the drop, then a rerun, completes; an age under a year
# refused without --force; a tampered retention record and a partition
# dropped without one are breaks.
#
# Env: TEST_RETENTION_REDIS_PORT (17751), TEST_RETENTION_PG_PORT (17761),
# JUKICTL (binary, default build/jukictl, else jukictl/jukictl).

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Test::More;
use Time::Local qw(timegm);

use lib dirname(__FILE__) . '/jukictl';
use JukiRef;

my $root = dirname(__FILE__) . '/..';
my ($initdb) = grep { -x } glob('/usr/lib/postgresql/*/bin/initdb');
plan skip_all => 'PostgreSQL binaries missing (scripts/deps.sh test)'
    unless $initdb;
system('sh', '-c', 'command -v redis-server >/dev/null') == 0
    or plan skip_all => 'redis-server missing (scripts/deps.sh test)';
system('sh', '-c', 'command -v psql >/dev/null') == 0
    or plan skip_all => 'psql missing (scripts/deps.sh test)';

my $rport = $ENV{TEST_RETENTION_REDIS_PORT} || 17751;
my $pport = $ENV{TEST_RETENTION_PG_PORT} || 17761;
my $bin = $ENV{JUKICTL}
    || (-x "$root/build/jukictl" ? "$root/build/jukictl"
                                 : "$root/jukictl/jukictl");
-x $bin or BAIL_OUT("$bin is not built");

my $dir = tempdir('juki-retention.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0711, $dir;

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

my $raw = join '', map { chr(($_ * 11 + 3) % 256) } 1 .. 32;
open my $kf, '>', "$dir/audit.key" or die $!;
binmode $kf;
print $kf $raw;
close $kf;
my $keyfile = "$dir/audit.key";
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

sub jk {
    my ($role, @args) = @_;
    my %env = @args && ref $args[0] eq 'HASH' ? %{ shift @args } : ();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{JUKI_REDIS} = "127.0.0.1:$rport";
        $ENV{JUKI_POSTGRES} = $dsn;
        delete $ENV{$_} for qw(JUKI_AUDIT_KEY JUKI_REDIS_PASSWORD
                               JUKI_REDIS_USER JUKI_REDIS_DB
                               JUKI_TEST_RETENTION_KILL);
        $ENV{$_} = $env{$_} for keys %env;
        if ($role) {
            $ENV{JUKI_REDIS_USER} = $role;
            $ENV{JUKI_REDIS_PASSWORD} = JukiRef::secret($role);
        } else {
            delete $ENV{JUKI_REDIS};
        }
        open STDIN, '<', '/dev/null' or die;
        open STDOUT, '>', "$dir/out" or die;
        open STDERR, '>', "$dir/err" or die;
        exec $bin, @args or exit 127;
    }
    waitpid $pid, 0;
    my $sig = $? & 127;
    my $rc = $sig ? 128 + $sig : $? >> 8;
    local $/;
    open my $o, '<', "$dir/out" or die;
    open my $e, '<', "$dir/err" or die;
    return ($rc, scalar(<$o> // ''), scalar(<$e> // ''));
}

my @agencies = map { [ "agency-$_", 'municipality',
                       [ 'tax.local', 'pension.benefit' ] ] } 1 .. 3;
my @codes = map { sprintf('%012d', 5000000 + $_ * 7919) } 1 .. 100;
my @w = map { JukiRef::writer(sprintf('%016x', 0xb000 + $_), $key) } 0 .. 2;

# months counted back from this one: 100, 99, 98 (past 7 years) and 20
my @now = gmtime();
my $mnow = ($now[5] + 1900) * 12 + $now[4];
sub month_ms {
    my ($back) = @_;
    my $m = $mnow - $back;
    return timegm(0, 0, 0, 10, $m % 12, int($m / 12)) * 1000;
}
sub part {
    my ($back) = @_;
    my $m = $mnow - $back;
    return sprintf('juki_records_%04d%02d', int($m / 12), $m % 12 + 1);
}

srand(7);
my @recs;
for my $back (100, 99, 98, 20) {
    push @recs, @{ JukiRef::trail(requests => 60, writers => \@w,
                                  agencies => \@agencies, codes => \@codes,
                                  summaries => 1,
                                  start_ms => month_ms($back)) };
}
my $nrec = @recs;
$redis->cmd('FLUSHALL');
$redis->load(\@recs);

my ($rc, $out, $err) = jk('juki-archiver', 'archive', '--key', $keyfile,
                          '--signing-key', "$dir/sign.pem",
                          '--checkpoint-file', "$dir/ck", '--keep', '0');
is($rc, 0, 'archive: exit 0') or diag $err;
like($out, qr/^archived: $nrec records/m, 'archive: every record');

my %rows;
for my $back (100, 99, 98, 20) {
    $rows{$back} = psql('SELECT count(*) FROM ' . part($back));
    ok($rows{$back} > 0, part($back) . ": $rows{$back} rows");
}

my @pub = ('verify', '--public-key', "$dir/pub.pem");
my @ret = ('retention', '--signing-key', "$dir/sign.pem");

($rc, $out, $err) = jk(undef, @pub);
is($rc, 0, 'verify --public-key before retention') or diag $err;

# --- refused ages ---
for my $age ('7d', '11mo', '364d', '0y', '7', '7m', '7years') {
    ($rc, $out, $err) = jk(undef, @ret, '--older-than', $age);
    is($rc, 2, "retention --older-than $age: exit 2");
}
like($err, qr/^jukictl: retention needs --older-than AGE/m,
     'a malformed age named');
($rc, $out, $err) = jk(undef, @ret, '--older-than', '7d');
like($err, qr/under a year.*--force/, 'under a year: --force named');
($rc, $out, $err) = jk(undef, 'retention', '--older-than', '7y');
is($rc, 2, 'retention without --signing-key: exit 2');
is(psql("SELECT count(*) FROM juki_retention"), 0, 'nothing recorded');

# --- killed between the detach and the drop ---
($rc, $out, $err) = jk(undef, { JUKI_TEST_RETENTION_KILL => 'detached' },
                       @ret, '--older-than', '99mo');
is($rc, 128 + 9, 'retention killed after the detach') or diag $err;
my $p100 = part(100);
is(psql("SELECT count(*) FROM pg_inherits WHERE inhrelid ="
        . " to_regclass('$p100')"), 0, "$p100 detached");
is(psql("SELECT to_regclass('$p100') IS NOT NULL"), 't',
   "$p100 not yet dropped");
is(psql("SELECT count(*) FROM juki_retention WHERE dropped IS NULL"), 1,
   'its record stored, not marked dropped');

($rc, $out, $err) = jk(undef, @pub);
is($rc, 0, 'verify --public-key between detach and drop: 0') or diag $err;

($rc, $out, $err) = jk(undef, @ret, '--older-than', '99mo');
is($rc, 0, 'retention rerun: exit 0') or diag $err;
like($out, qr/^dropped: $p100 \(detached by an earlier run\)$/m,
     'the rerun drops what the killed run detached');
like($out, qr/^retention: 0 partitions/m, 'and nothing more at 99mo');
is(psql("SELECT to_regclass('$p100') IS NULL"), 't', "$p100 dropped");

# --- 7y: the other two old months ---
($rc, $out, $err) = jk(undef, @ret, '--older-than', '7y');
is($rc, 0, 'retention --older-than 7y: exit 0') or diag $err;
my ($p99, $p98, $p20) = (part(99), part(98), part(20));
my ($n99, $n98) = ($rows{99}, $rows{98});
like($out, qr/^dropped: $p99 \($n99 records in 4 lists\)$/m,
     "$p99 dropped, its rows counted");
like($out, qr/^dropped: $p98 \($n98 records in 4 lists\)$/m,
     "$p98 dropped");
is(psql("SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM"
        . " pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE"
        . " i.inhparent = 'juki_records'::regclass AND c.relname < '$p20'"
        . " AND c.relname <= '$p98'"), '', 'no old partition left');
is(psql("SELECT count(*) FROM juki_records"), $nrec - $rows{100}
       - $rows{99} - $rows{98}, 'the kept month untouched');
is(psql("SELECT count(*) FROM juki_retention WHERE dropped IS NOT NULL"),
   3, 'three retention records, all done');
my $note = psql("SELECT note FROM juki_retention ORDER BY id LIMIT 1");
like($note, qr/^juki-archive\njuki-archive retention v1\ntime \d+\nmonth (?#
    )\d{4}-\d\d\nlist _ 0 \d+ \d+ \S+\nlist agency-1 0 \d+ \d+ \S+\n/,
     'the record: its form');
like($note, qr/^writer [0-9a-f]{16} 0 \d+ \S+$/m, 'the record: writers');
like($note, qr/\n\n\xe2\x80\x94 juki-archive \S+\n?\z/, 'the record: signed');
ok(psql("SELECT count(*) FROM juki_counts") > 0, 'the counts stay');

($rc, $out, $err) = jk(undef, @pub);
is($rc, 0, 'verify --public-key after retention: 0') or diag $err;
like($out, qr/; 3 retention records$/m, 'verify counts the records');

($rc, $out, $err) = jk(undef, @ret, '--older-than', '7y');
is($rc, 0, 'retention again: exit 0') or diag $err;
like($out, qr/^retention: 0 partitions, 0 records/m, 'nothing more');

# --- a tampered retention record ---
psql("CREATE TABLE bak AS SELECT * FROM juki_retention;"
     . " UPDATE juki_retention SET note = regexp_replace(note,"
     . " '(list agency-2 \\d+ )(\\d)', '\\1' || 'x')"
     . " WHERE id = (SELECT min(id) FROM juki_retention)");
($rc, $out, $err) = jk(undef, @pub);
is($rc, 1, 'a tampered retention record: exit 1');
like($err, qr/retention record \d+: (bad signature|malformed|.*sign)/i,
     'the tampered record named') or diag $err;
psql("DELETE FROM juki_retention; INSERT INTO juki_retention"
     . " SELECT * FROM bak; DROP TABLE bak");
($rc, $out, $err) = jk(undef, @pub);
is($rc, 0, 'restored: 0') or diag $err;

# --- a month dropped without a record ---
psql("DROP TABLE $p20");
($rc, $out, $err) = jk(undef, @pub);
is($rc, 1, 'a partition dropped without a record: exit 1');

done_testing();
