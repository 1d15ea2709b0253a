# Group commit (issue 10; docs/audit.md, "The function and group commit"):
# the records of every request one worker handles in one turn of its event
# loop go to Redis in ONE FCALL, and every request still gets its own
# decision; rate limits stay exact under concurrency; a call that fails
# fails exactly its requests (503 audit_unavailable, nothing forwarded)
# while later calls succeed; a completion record rides a later call and is
# chained.
#
# One turn, made sure of: N TLS connections to the gateway are opened and
# their handshakes done, the single worker is stopped (SIGSTOP), the N
# requests are written, the worker continued (SIGCONT): one epoll_wait then
# returns all N.  What went to Redis is read from MONITOR (as juki-admin),
# each FCALL's groups parsed by the calling contract of
# src/ngx_http_juki_function.h, and from INFO commandstats.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;
use IO::Socket::SSL;
use Time::HiRes ();
use POSIX ();

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');
workers(1);

our %R;        # what each batch saw, by tag
our $N = $ENV{TEST_NGINX_USE_VALGRIND} ? 6 : 12;

my $pki = juki_env('TEST_NGINX_PKI');
my $gw  = $ENV{TEST_NGINX_GW_PORT};

# the single worker of the nginx under test (or its single process)
sub worker_pid {
    my $root = $ENV{TEST_NGINX_SERVROOT_DIR}
               // ($ENV{TEST_NGINX_SERVROOT} || 't/servroot');
    open(my $fh, '<', "$root/logs/nginx.pid") or die "nginx.pid: $!\n";
    chomp(my $master = <$fh> // '');
    close $fh;
    my @w;
    for my $st (glob '/proc/[0-9]*/stat') {
        open(my $s, '<', $st) or next;
        my $l = <$s> // '';
        close $s;
        push @w, $1 if $l =~ /^(\d+) \(nginx\) \S+ (\d+) / && $2 == $master;
    }
    # master_process off (the harness's default): the one process is it
    return $master if !@w && kill 0, $master;
    die "not one nginx worker of master $master: @w\n" unless @w == 1;
    return $w[0];
}

# MONITOR of the test Redis into a file, as the admin
my ($mon_pid, $mon_file);

sub monitor_start {
    $mon_file = juki_env('TEST_NGINX_REDIS_DIR') . "/monitor-090.$$.txt";
    unlink $mon_file;
    $mon_pid = fork();
    die "fork: $!" unless defined $mon_pid;
    if ($mon_pid == 0) {
        open(STDOUT, '>', $mon_file) or POSIX::_exit(1);
        my @cmd = ('redis-cli', JukiTest::cli_auth(), '-p',
                   juki_env('TEST_NGINX_REDIS_PORT'), 'MONITOR');
        unshift @cmd, 'stdbuf', '-oL' if -x '/usr/bin/stdbuf';
        exec(@cmd) or POSIX::_exit(1);
    }
    for (1 .. 100) {
        last if -s $mon_file;
        Time::HiRes::sleep(0.02);
    }
}

# the FCALLs seen: each [ [args...] ] with the escapes of MONITOR undone
sub monitor_stop {
    Time::HiRes::sleep(0.2);
    kill 'TERM', $mon_pid;
    waitpid($mon_pid, 0);
    open(my $fh, '<', $mon_file) or die "$mon_file: $!\n";
    my @calls;
    while (my $l = <$fh>) {
        next unless $l =~ /^\d+\.\d+ \[\d+ [^\]]+\] "FCALL"/i;
        my @a = JukiTest::monitor_args($l);
        push @calls, \@a;
    }
    close $fh;
    unlink $mon_file;
    return @calls;
}

# an FCALL's groups by the contract: FCALL F NUMKEYS KEY... NODE RULES GSTOP
# then P KI ELEMENT | D KI ELEMENT OPERATOR | R KI BODY OPERATOR PURPOSE
# LIMITS SUBJECT; returns ({op, key, element}...) or dies
sub groups {
    my @a = @{$_[0]};
    my (undef, undef, $nk) = splice(@a, 0, 3);
    my @keys = splice(@a, 0, $nk);
    splice(@a, 0, 3);
    my @g;
    while (@a) {
        my $op = shift @a;
        my $n = { P => 2, D => 3, R => 6 }->{$op} // die "bad group $op\n";
        my @f = splice(@a, 0, $n);
        die "short group\n" unless @f == $n;
        push @g, { op => $op, key => $keys[$f[0] - 1], element => $f[1] };
    }
    return @g;
}

sub fcalls_total {
    my ($c) = redis('INFO', 'commandstats') =~ /cmdstat_fcall:calls=(\d+)/;
    return $c // 0;
}

sub tls {
    my $cert = shift;
    my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $gw,
        SSL_cert_file => "$pki/$cert.pem", SSL_key_file => "$pki/$cert.key",
        SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 10)
        or die "TLS to the gateway: $SSL_ERROR\n";
    return $s;
}

sub request_text {
    my ($path, $purpose, $op) = @_;
    return "GET $path HTTP/1.1\r\nHost: localhost\r\n"
         . "Juki-Purpose: $purpose\r\nJuki-Operator: $op\r\n"
         . "Connection: close\r\n\r\n";
}

sub response {
    my $s = shift;
    my $resp = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 10;
    eval {
        while (1) {
            my $n = sysread($s, my $buf, 65536);
            last unless $n;
            $resp .= $buf;
        }
        1;
    };
    alarm 0;
    close $s;
    my ($st) = $resp =~ m{\AHTTP/1\.[01] (\d{3})};
    my ($id) = $resp =~ /^Juki-Audit-Id:\s*([0-9a-f]{16}-\d+)\r?$/mi;
    ($id) = $resp =~ /"audit_id":"([0-9a-f]{16}-\d+)"/ unless $id;
    return { status => $st // 'none', id => $id, body => $resp };
}

# one request, as a later call
sub one {
    my ($cert, $path, $purpose, $op) = @_;
    my $s = tls($cert);
    print $s request_text($path, $purpose, $op);
    return response($s);
}

# batch(TAG, REQUESTS, stop => 1|0): each request [cert, path, purpose, op];
# all connections opened first; with stop, written while the worker is
# stopped, so that they are read in one turn
sub batch {
    my ($tag, $reqs, %o) = @_;
    my $stop = $o{stop} // 1;
    # warm-up: the worker's Redis connection and writer exist before (an
    # agency and purpose the batch's limits do not count)
    one(@{$o{warm} // ['national', '/v1/residents/', 'pension.benefit']},
        'warm-up');
    Time::HiRes::sleep(0.3);
    my @s = map { tls($_->[0]) } @$reqs;
    Time::HiRes::sleep(0.2);
    monitor_start();
    my $before = fcalls_total();
    my $hits = backend_hits();
    my $pid = worker_pid();
    my @resp;
    kill 'STOP', $pid if $stop;
    eval {
        for my $i (0 .. $#$reqs) {
            my $fh = $s[$i];
            print $fh request_text(@{$reqs->[$i]}[1 .. 3]);
        }
        Time::HiRes::sleep(0.2);
        1;
    } or do { kill 'CONT', $pid; die $@ };
    kill 'CONT', $pid if $stop;
    @resp = map { response($_) } @s;
    my $hits_after = backend_hits();
    Time::HiRes::sleep(0.5);               # the completions' call
    $R{$tag} = { resp => \@resp, hits => $hits_after - $hits,
                 calls => [monitor_stop()],
                 fcalls => fcalls_total() - $before };
    return $R{$tag};
}

# the audit records by id
sub by_id { return map { ($_->{id} => $_) } grep { !exists $_->{phase} }
                                               audit_records() }

add_block_preprocessor(sub {
    my $block = shift;
    juki_defaults($block);
});

redis_flush();

run_tests();

my %rec = by_id();

# ---- 1: one turn, one call, a decision each
{
    my $b = $R{one_turn} // die "the one-turn batch did not run\n";
    my @r = @{$b->{resp}};
    my @deciding = grep { grep { $_->{op} eq 'R' } groups($_) } @{$b->{calls}};
    is(scalar @deciding, 1, "one turn: ONE FCALL decided the $N requests");
    is(scalar(grep { $_->{op} eq 'R' } map { groups($_) } @deciding), $N,
       "one turn: that call carries $N R groups");
    is($b->{fcalls}, scalar @{$b->{calls}},
       'one turn: INFO commandstats counts the FCALLs MONITOR saw');
    is(scalar(grep { $_->{status} == 200 } @r), 4,
       'one turn: rate 1r/m burst=3: exactly 4 allowed');
    is(scalar(grep { $_->{status} == 429 } @r), $N - 4,
       'one turn: the rest 429');
    is($b->{hits}, 4, 'one turn: 4 reached the backend');
    my %ids = map { ($_->{id} // '') => 1 } @r;
    is(scalar(grep { length } keys %ids), $N,
       'one turn: every response its own audit id');
    my $agree = grep {
        my $a = $rec{$_->{id} // ''};
        $a && $a->{decision} eq ($_->{status} == 200 ? 'allow'
                                 : 'deny:rate_limited')
    } @r;
    is($agree, $N, "one turn: each response's decision is its record's");
}

# ---- 2: rate limits exact under concurrency (several turns)
{
    my $b = $R{concurrent} // die "the concurrent batch did not run\n";
    my @r = @{$b->{resp}};
    is(scalar(grep { $_->{status} == 200 } @r), 10,
       'concurrency: agency rate 1r/m burst=9: exactly 10 of 30 allowed');
    is(scalar(grep { $_->{status} == 429 } @r), 20, 'concurrency: 20 429');
    is($b->{hits}, 10, 'concurrency: 10 reached the backend');
}

# ---- 3: a failed call fails exactly its requests (the call is made of one
# agency's requests, whose list is broken, and maybe the warm-up's completion:
# a call that also held another agency's records would, with Redis's
# non-transactional functions, leave those written and the writer's chain
# with a hole unless the function checks every list's type first)
{
    my $b = $R{failed} // die "the failing batch did not run\n";
    my @r = @{$b->{resp}};
    my @deciding = grep { grep { $_->{op} eq 'R' } groups($_) } @{$b->{calls}};
    is(scalar @deciding, 1, 'failed call: the 3 requests were one FCALL');
    is(scalar(grep { $_->{status} == 503
                     && $_->{body} =~ /\{"error":"audit_unavailable"\}/ } @r),
       3, 'failed call: each of its 3 requests 503 audit_unavailable');
    is($b->{hits}, 0, 'failed call: nothing forwarded');
    my $later = $R{failed_later} // {};
    is($later->{national}{status}, 200,
       'failed call: a later call (another agency) succeeds');
    like($later->{national}{body}, qr/"agency":"pension-service"/,
         'failed call: and is forwarded');
    is($later->{private}{status}, 503,
       'failed call: a later call to the broken list fails alone');
}

# ---- 4: the completion rides a later call, chained
{
    my $b = $R{completion} // die "the completion batch did not run\n";
    my ($r) = @{$b->{resp}};
    is($r->{status}, 200, 'completion: the request allowed');
    my @g = map { [groups($_)] } @{$b->{calls}};
    my ($ci) = grep { grep { $_->{op} eq 'R' } @{$g[$_]} } 0 .. $#g;
    ok(defined $ci, 'completion: the call that decided it');
    my @later = map { @{$g[$_]} } grep { $_ > ($ci // 1e9) } 0 .. $#g;
    my @c = grep { $_->{phase} eq 'done' && $_->{id} eq ($r->{id} // '') }
            map { JukiTest::a3_decode($_->{element}) }
            grep { $_->{op} eq 'P' } @later;
    is(scalar @c, 1, 'completion: its C record rode a later call');
    is($c[0]{decision}, 'allow', 'completion: and says allow') if @c;
    my ($stored) = grep { ($_->{phase} // '') eq 'done'
                          && $_->{id} eq ($r->{id} // '') } audit_records();
    ok($stored && JukiTest::check_completion($stored),
       'completion: stored, its mac chained on its predecessor');
    ok($stored && $stored->{seq} > $rec{$r->{id} // ''}{seq},
       'completion: after its record in the writer\'s chain');
}

my ($bad, $unconfirmed) = JukiTest::trail_problems(audit_records());
is_deeply($bad, [], 'the whole trail verifies') or diag(join("\n", @$bad));

__DATA__

=== TEST 1: N requests in one turn: one FCALL, each its own decision
--- http_config eval
JukiTest::http_config(purpose_rate => {'rate.probe' => '1r/m burst=3'})
--- init
main::batch('one_turn', [map { ['national', "/v1/probe/$_", 'rate.probe',
                                "op-$_"] } 1 .. $main::N]);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-after
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: rate limits exact under concurrency
--- http_config eval
JukiTest::http_config(agency_rate => {'pension-service' => '1r/m burst=9'})
--- init
JukiTest::redis_reset();
main::batch('concurrent', [map { ['national', "/v1/probe/$_", 'rate.probe',
                                  "op-$_"] } 1 .. 30], stop => 0,
            warm => ['municipality', '/v1/residents/', 'health.insurance']);
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: health.insurance
Juki-Operator: op-after
--- error_code: 200



=== TEST 3: a failed call fails exactly its requests; later calls succeed
--- http_config eval
JukiTest::http_config()
--- init
JukiTest::redis_reset();
# example-bank's audit list (none yet: no record is lost) made a string by
# the admin: an FCALL appending to it fails (WRONGTYPE)
die "example-bank has records already\n"
    if JukiTest::redis('EXISTS', 'juki:{example-bank}:audit') =~ /1/;
JukiTest::redis('SET', 'juki:{example-bank}:audit', 'not a list');
main::batch('failed', [
    map { ['private', "/v1/verify?n=$_", 'identity.verification', "op-b$_"] }
    1 .. 3]);
$main::R{failed_later}{national} =
    main::one('national', '/v1/residents/', 'pension.benefit', 'op-later');
$main::R{failed_later}{private} =
    main::one('private', '/v1/verify', 'identity.verification', 'op-later');
JukiTest::redis('DEL', 'juki:{example-bank}:audit');
--- request
GET /v1/verify
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: op-after
--- error_code: 200



=== TEST 4: a completion record rides a later call, chained
--- http_config eval
JukiTest::http_config()
--- init
JukiTest::redis_reset();
main::batch('completion', [['national', '/v1/residents/', 'pension.benefit',
                            'op-c']]);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-after
--- error_code: 200
--- no_error_log
[error]
