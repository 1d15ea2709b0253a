# juki_redis replicas=K: a call's records count as acknowledged only when
# the master applied them and WAIT, sent behind the call on the same
# connection, reports K replicas that have them; fewer within timeout= is
# 503 audit_unavailable with nothing forwarded.  Real processes: the
# Sentinel set-up of scripts/topology.sh (a master and two replicas), whose
# master the gateway is given directly.  And what nginx -t refuses.
#
# Every block that sends requests names in its title "[backend N]", the
# requests the backend must see during the block, as in t/027-redis-tls.t.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

my $base = juki_env('TEST_NGINX_REDIS_PORT') + 70;
my $dir = juki_env('TEST_NGINX_REDIS_DIR') . '-replicas';
$ENV{TEST_NGINX_MASTER_PORT} = $base;
our ($R1, $R2) = ($base + 1, $base + 2);

# the timeout= of the blocks that wait for WAIT to give up: short, so that
# the replicas stay stopped well within the master's min-replicas-max-lag
# (10 s), past which it refuses writes until they catch up
our $SHORT = $ENV{TEST_NGINX_USE_VALGRIND} ? '3s' : '1s';

our $Log = juki_env('TEST_NGINX_REDIS_DIR') . "/../backend-replicas.$$.log";
our (@MARKS, %HITS);

sub cli {
    my ($port, @args) = @_;
    # no shell: the library's text has quotes of its own
    open(my $fh, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $port, @args)
        or die "redis-cli: $!\n";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    chomp $out;
    return $out;
}

sub lines {
    open(my $fh, '<', $Log) or return 0;
    my @l = <$fh>;
    close $fh;
    return scalar @l;
}

sub mark { push @MARKS, [shift, lines()] }

# a replica stopped (SIGSTOP) holds its connection but acknowledges nothing
sub replica_signal {
    my ($sig, @ports) = @_;
    for my $p (@ports) {
        my $pid;
        if ($sig eq 'CONT') {
            # a stopped Redis answers nothing: its pid is the one kept
            ($pid) = `cat $dir/replica-$p.pid 2>/dev/null` =~ /(\d+)/;
        } else {
            ($pid) = cli($p, 'INFO', 'server') =~ /^process_id:(\d+)/m;
            open(my $fh, '>', "$dir/replica-$p.pid") or die $!;
            print $fh "$pid\n";
            close $fh;
        }
        kill $sig, $pid if $pid;
    }
}

# A replica just synced (or continued after a stop) counts for WAIT, and
# lets the master write (min-replicas-to-write), only once the master has
# its acknowledgement: a write and WAIT on one connection, until both
# replicas answer
sub replicas_online {
    for (1 .. 100) {
        open(my $fh, '|-', "redis-cli -h 127.0.0.1 -p $base > $dir/online.out")
            or die "redis-cli: $!\n";
        print $fh "SET juki:test:online 1\nWAIT 2 200\n";
        close $fh;
        open($fh, '<', "$dir/online.out") or die "$dir/online.out: $!\n";
        my @l = <$fh>;
        close $fh;
        return 1 if ($l[0] // '') =~ /^OK$/ && ($l[1] // '') =~ /^2$/;
        select(undef, undef, undef, 0.1);
    }
    return 0;
}

sub config {
    my %o = @_;
    # the set-up's nodes have no ACL (the default user, no password)
    my $text = JukiTest::http_config(
        redis => "127.0.0.1:$ENV{TEST_NGINX_MASTER_PORT} $o{params}",
        noauth => 1, %o);
    $text =~ s{(access_log logs/backend\.log;)}{$1\n        access_log $Log;}
        or die "no backend access_log line\n";
    return $text;
}

add_block_preprocessor(sub {
    my $block = shift;
    if ($block->name =~ /^TEST (\d+):.*\[backend (\d+)\]/) {
        my ($n, $hits) = ($1, $2);
        $HITS{$n} = [$block->name, $hits];
        my $init = $block->init;
        $block->set_value('init', "main::mark($n);\n"
                                   . (defined $init ? $init : ''));
    }
    juki_defaults($block);
});

# stopped however the file ends
END { system('scripts/topology.sh', 'stop', 'sentinel', $dir, $base) if $dir }

system('scripts/topology.sh', 'start', 'sentinel', $dir, $base) == 0
    or die "cannot start the replicated redis set-up\n";
my $loaded = cli($base, 'FUNCTION', 'LOAD', JukiTest::function_text());
JukiTest::function_loaded($loaded)
    or die "cannot load the function library: $loaded\n";
replicas_online() or die "the replicas do not acknowledge writes\n";

run_tests();

select(undef, undef, undef, 0.3);
mark(undef);

for my $i (0 .. $#MARKS - 1) {
    my ($n, $before) = @{$MARKS[$i]};
    my $h = $HITS{$n} or next;
    (my $short = $h->[0]) =~ s/\s*\[.*//;
    is($MARKS[$i + 1][1] - $before, $h->[1], "$short - backend saw $h->[1]");
}

# every record the master acknowledged with WAIT is on a replica: the A
# records (type byte 'A') of the list counted on each node
sub a_count {
    my $port = shift;
    my $out = cli($port, 'EVAL',
        "local n = 0 for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1))"
        . " do if string.sub(e, 1, 1) == 'A' then n = n + 1 end end return n",
        1, 'juki:{pension-service}:audit');
    return $out =~ /^(\d+)$/m ? $1 : -1;
}

replica_signal('CONT', $R1, $R2);
replicas_online();
my $m = a_count($base);
cmp_ok($m, '>=', 3, 'the master has the records of the forwarded requests');
is(a_count($R1), $m, 'the first replica has every one of them');
is(a_count($R2), $m, 'the second replica has every one of them');

unlink $Log;

__DATA__

=== TEST 1: replicas=1, both replicas up: requests pass [backend 2]
--- http_config eval
main::config(params => 'replicas=1')
--- request eval
["GET /v1/residents/?code=11122233344", "GET /v1/residents/"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-repl
--- error_code eval
[200, 200]
--- no_error_log
[error]
[crit]



=== TEST 2: replicas=2, both up: requests pass [backend 1]
--- http_config eval
main::config(params => 'replicas=2')
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-repl
--- error_code: 200
--- no_error_log
[error]
[crit]



=== TEST 3: replicas=3, only two exist: 503, nothing forwarded [backend 0]
--- http_config eval
main::config(params => 'replicas=3', timeout => $main::SHORT)
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-repl
--- error_code: 503
--- response_body
{"error":"audit_unavailable"}
--- error_log eval
qr/\[error\] .*juki: \d+ audit records acknowledged by 2 of the 3 replicas required/



=== TEST 4: replicas=1, every replica stopped: 503 within timeout=, nothing forwarded [backend 0]
--- http_config eval
main::config(params => 'replicas=1', timeout => $main::SHORT)
--- init
main::replica_signal('STOP', $main::R1, $main::R2);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-repl
--- error_code: 503
--- response_body
{"error":"audit_unavailable"}
--- error_log eval
qr/\[error\] .*juki: \d+ audit records acknowledged by 0 of the 1 replicas required/



=== TEST 5: the replicas back: replicas=1 passes again [backend 1]
--- http_config eval
main::config(params => 'replicas=1')
--- init
main::replica_signal('CONT', $main::R1, $main::R2);
main::replicas_online() or die "the replicas are not back\n";
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-repl
--- error_code: 200
--- no_error_log
[error]
[crit]



=== TEST 6: replicas= over 16 is refused by nginx -t
--- http_config eval
main::config(params => 'replicas=17')
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "replicas=" in "juki_redis" in \S+nginx\.conf:\d+/



=== TEST 7: replicas= not a number is refused by nginx -t
--- http_config eval
main::config(params => 'replicas=one')
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "replicas=" in "juki_redis" in \S+nginx\.conf:\d+/
