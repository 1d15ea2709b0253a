# The replicated Redis set-ups (scripts/topology.sh) with real processes:
# Sentinel finds the master and fails over after kill -9, a demoted master
# brought back becomes a replica and acknowledges nothing meanwhile, a
# master without a replica refuses writes; Cluster spreads the slots over
# three masters with a replica each and keys go where CRC16 of their hash
# tag says; with TLS no process answers in plaintext.  No NGINX here: the
# gateway's side of these set-ups is tested where the gateway speaks them.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);

my $script = 'scripts/topology.sh';
my $base = ($ENV{TEST_NGINX_REDIS_PORT} || 16379) + 30;
my $work = ($ENV{TEST_NGINX_REDIS_DIR} || "/tmp/juki-topology.$$")
           . '-topology';
my $pki = $ENV{TEST_NGINX_PKI};
my @started;

if ($ENV{TEST_NGINX_USE_VALGRIND} || $ENV{TEST_NGINX_USE_HUP}) {
    plan skip_all => 'no nginx in this file: it runs in the plain pass only';
}

sub topo {
    my ($action, $kind, $dir, $port, %env) = @_;
    local @ENV{keys %env} = values %env;
    my $out = `$script $action $kind '$dir' $port 2>&1`;
    return ($? >> 8, $out);
}

sub cli {
    my ($port, @args) = @_;
    my @tls = ();
    if (ref $port) {
        @tls = ('--tls', '--cacert', "$pki/ca.pem");
        $port = $$port;
    }
    my $q = join ' ', map { "'$_'" } @args;
    my $out = `redis-cli @tls -h 127.0.0.1 -p $port $q 2>&1`;
    chomp $out;
    return $out;
}

sub until_true {
    my ($secs, $cond) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return time - $t0 if $cond->();
        sleep 0.1;
    }
    return undef;
}

# stops what was started, keeping the exit status Test::More set
END {
    local $?;
    return unless @started;
    for my $s (@started) {
        my ($kind, $dir, $port, %env) = @$s;
        topo('stop', $kind, $dir, $port, %env);
    }
    system('rm', '-rf', '--', "$work-sentinel", "$work-cluster", "$work-tls",
           "$work-tls-cluster")
        unless $ENV{KEEP};
}

# ---- usage

{
    my ($rc, $out) = topo('start', 'ring', "$work-x", $base);
    is($rc, 2, 'an unknown set-up is a usage error');
    ($rc, $out) = topo('start', 'sentinel', "$work-x", 99);
    is($rc, 1, 'a port the cluster bus cannot use is refused');
    like($out, qr/bad base port/, '... and says why');
}

# ---- Sentinel

my $sdir = "$work-sentinel";
{
    my ($rc, $out) = topo('start', 'sentinel', $sdir, $base);
    is($rc, 0, 'sentinel set-up starts') or diag $out;
    push @started, ['sentinel', $sdir, $base];
    ($rc, $out) = topo('status', 'sentinel', $sdir, $base);
    is($rc, 0, 'status: every process runs') or diag $out;

    for my $s (3 .. 5) {
        is(cli($base + $s, 'SENTINEL', 'get-master-addr-by-name', 'juki'),
           "127.0.0.1\n$base", "sentinel " . ($s - 2) . " names the master");
    }
    for my $n (0 .. 2) {
        my $p = $base + $n;
        is(cli($p, 'CONFIG', 'GET', 'appendfsync'), "appendfsync\nalways",
           "node $p: appendfsync always");
        is(cli($p, 'CONFIG', 'GET', 'maxmemory-policy'),
           "maxmemory-policy\nnoeviction", "node $p: noeviction");
    }
    like(cli($base, 'INFO', 'replication'), qr/^connected_slaves:2\r?$/m,
         'the master has two replicas');
    is(cli($base, 'RPUSH', 'juki:{a}:audit', 'r1'), '1', 'a write');
    is(cli($base, 'WAIT', 2, 2000), '2', '... reaches both replicas');
    like(cli($base + 1, 'RPUSH', 'juki:{a}:audit', 'r2'), qr/READONLY/,
         'a replica refuses writes');

    # a master cut off from its replicas acknowledges nothing
    system("redis-cli -p $_ DEBUG SLEEP 0 >/dev/null; "
           . "redis-cli -p $_ SHUTDOWN NOSAVE >/dev/null 2>&1")
        for $base + 1, $base + 2;
    ok(defined until_true(5, sub {
        cli($base, 'INFO', 'replication') =~ /^connected_slaves:0\r?$/m }),
       'both replicas gone');
    like(cli($base, 'RPUSH', 'juki:{a}:audit', 'r3'), qr/^NOREPLICAS/,
         'the master alone refuses the write (min-replicas-to-write)');
    ($rc, $out) = topo('start', 'sentinel', $sdir, $base);
    is($rc, 0, 'the replicas restart') or diag $out;
    ok(defined until_true(10, sub {
        cli($base, 'INFO', 'replication') =~ /^connected_slaves:2\r?$/m }),
       '... and reconnect');
    is(cli($base, 'LLEN', 'juki:{a}:audit'), '1',
       'the refused write left nothing');

    # kill -9 of the master: a replica is promoted
    my $pid = do { local @ARGV = ("$sdir/master/redis.pid"); <> };
    chomp $pid;
    ok(kill('KILL', $pid), 'kill -9 the master');
    my $new;
    my $took = until_true(15, sub {
        my $a = cli($base + 3, 'SENTINEL', 'get-master-addr-by-name', 'juki');
        ($new) = $a =~ /^127\.0\.0\.1\n(\d+)$/;
        defined $new && $new != $base
            && cli($new, 'ROLE') =~ /^master/;
    });
    ok(defined $took, 'a replica is promoted');
    diag(sprintf 'failover took %.1f s', $took) if defined $took;
    $new //= $base + 1;
    ok($new == $base + 1 || $new == $base + 2, 'the new master is a replica');
    is(cli($new, 'LRANGE', 'juki:{a}:audit', 0, -1), 'r1',
       'the new master has the acknowledged record');
    ok(defined until_true(10, sub {
        cli($new, 'INFO', 'replication') =~ /^connected_slaves:1\r?$/m }),
       'the other replica follows the new master');
    is(cli($new, 'RPUSH', 'juki:{a}:audit', 'r4'), '2',
       'the new master takes writes');

    # the old master comes back: it refuses writes until Sentinel demotes it
    ($rc, $out) = topo('start', 'sentinel', $sdir, $base);
    is($rc, 0, 'the old master restarts') or diag $out;
    like(cli($base, 'RPUSH', 'juki:{a}:audit', 'stale'),
         qr/^(NOREPLICAS|READONLY)/,
         'the old master acknowledges nothing as it comes back');
    ok(defined until_true(15, sub { cli($base, 'ROLE') =~ /^slave/ }),
       'Sentinel makes the old master a replica');
    ok(defined until_true(10, sub {
        cli($base, 'LRANGE', 'juki:{a}:audit', 0, -1) eq "r1\nr4" }),
       'which then holds what the new master acknowledged, nothing else');
}

# ---- Cluster

my $cdir = "$work-cluster";
my $cbase = $base + 10;
{
    my ($rc, $out) = topo('start', 'cluster', $cdir, $cbase);
    is($rc, 0, 'cluster set-up starts') or diag $out;
    push @started, ['cluster', $cdir, $cbase];

    my $shards = cli($cbase, 'CLUSTER', 'SHARDS');
    my @roles = $shards =~ /^role\n(master|replica)$/mg;
    is(scalar(grep { $_ eq 'master' } @roles), 3, 'three masters');
    is(scalar(grep { $_ eq 'replica' } @roles), 3, 'three replicas');
    my @parts = split /^slots$/m, $shards;
    shift @parts;
    is(scalar(@parts), 3, 'three shards');
    for my $i (0 .. $#parts) {
        my @r = $parts[$i] =~ /^role\n(master|replica)$/mg;
        is(join(',', sort @r), 'master,replica',
           "shard $i: one master, one replica");
    }

    # CRC16/XMODEM of the hash tag, mod 16384 (the Redis Cluster rule)
    my $crc16 = sub {
        my $crc = 0;
        for my $c (unpack 'C*', shift) {
            $crc ^= $c << 8;
            for (1 .. 8) {
                $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff
                                     : ($crc << 1) & 0xffff;
            }
        }
        return $crc;
    };
    for my $agency (qw(pension-service tax.office city-01)) {
        my $slot = $crc16->($agency) % 16384;
        is(cli($cbase, 'CLUSTER', 'KEYSLOT', "juki:{$agency}:audit"), $slot,
           "{$agency}: slot $slot from CRC16 of the hash tag");
        is(cli($cbase, 'CLUSTER', 'KEYSLOT', "juki:{$agency}:stop"), $slot,
           "{$agency}: its stop switch in the same slot");
    }
    isnt(cli($cbase, 'CLUSTER', 'KEYSLOT', 'juki:stop'),
         cli($cbase, 'CLUSTER', 'KEYSLOT', 'juki:{pension-service}:audit'),
         'the global stop switch is in another slot');
    like(`redis-cli -c -h 127.0.0.1 -p $cbase RPUSH 'juki:{tax.office}:audit' x 2>&1`,
         qr/^1$/m, 'a write follows MOVED to its slot owner');
}

# ---- TLS

SKIP: {
    skip 'no TEST_NGINX_PKI (scripts/test.sh makes one)', 9 unless $pki;
    my $tdir = "$work-tls";
    my $tbase = $base + 20;
    my ($rc, $out) = topo('start', 'sentinel', $tdir, $tbase,
                          REDIS_TLS_DIR => $pki);
    is($rc, 0, 'sentinel set-up starts with TLS') or diag $out;
    push @started, ['sentinel', $tdir, $tbase, REDIS_TLS_DIR => $pki];
    unlike(cli($tbase, 'PING'), qr/^PONG$/, 'plaintext gets no answer');
    is(cli(\$tbase, 'PING'), 'PONG', 'TLS with the CA works');
    like(cli(\$tbase, 'INFO', 'replication'), qr/^connected_slaves:2\r?$/m,
         'replication runs over TLS');
    is(cli(\($tbase + 3), 'SENTINEL', 'get-master-addr-by-name', 'juki'),
       "127.0.0.1\n$tbase", 'the Sentinels watch over TLS');
    like(`redis-cli --tls -h 127.0.0.1 -p $tbase PING 2>&1`,
         qr/verify|certificate/i, 'TLS without the CA fails verification');

    my $cb = $tbase + 10;
    ($rc, $out) = topo('start', 'cluster', "$tdir-cluster", $cb,
                       REDIS_TLS_DIR => $pki);
    is($rc, 0, 'cluster set-up starts with TLS (bus over TLS)') or diag $out;
    push @started, ['cluster', "$tdir-cluster", $cb, REDIS_TLS_DIR => $pki];
    unlike(cli($cb, 'PING'), qr/^PONG$/, 'a cluster node: no plaintext');
    like(cli(\$cb, 'CLUSTER', 'INFO'), qr/^cluster_state:ok\r?$/m,
         'the cluster is whole over TLS');
}

done_testing();
