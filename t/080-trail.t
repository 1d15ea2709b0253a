# The trail binds every decision: a gateway decision by the audit record's
# mac (A3: gdecision, which the decision byte must equal), a decision Redis
# took by the completion record the gateway writes once it has read the
# reply (C).  A reader of the Redis traffic
# (MONITOR) who flips a stored decision with anything it saw is detected;
# every completion names a record of its stream with the same decision,
# once, also with log_subrequest on; NGINX's own certificate refusals under
# ssl_verify_client are recorded from the log phase.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;
use POSIX ();

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

add_block_preprocessor(sub {
    my $block = shift;
    juki_defaults($block);
});

redis_flush();

# the reader of the traffic: everything the gateway sends to Redis
my $monitor = juki_env('TEST_NGINX_REDIS_DIR') . "/monitor.$$.txt";
unlink $monitor;
my $mon_pid = fork();
die "fork: $!" unless defined $mon_pid;
if ($mon_pid == 0) {
    open(STDOUT, '>', $monitor) or POSIX::_exit(1);
    my @cmd = ('redis-cli', JukiTest::cli_auth(), '-p',
               juki_env('TEST_NGINX_REDIS_PORT'), 'MONITOR');
    unshift @cmd, 'stdbuf', '-oL' if -x '/usr/bin/stdbuf';
    exec(@cmd) or POSIX::_exit(1);
}
for (1 .. 100) {
    last if -s $monitor;
    select(undef, undef, undef, 0.05);
}

run_tests();

select(undef, undef, undef, 0.3);
kill 'TERM', $mon_pid;
waitpid($mon_pid, 0);

my @all = audit_records();
my @audit = grep { !exists $_->{phase} } @all;
my @done = grep { ($_->{phase} // '') eq 'done' } @all;

# --- the trail as the gateway wrote it

my ($bad, $unconfirmed) = JukiTest::trail_problems(@all);
is(scalar @$bad, 0, 'the trail follows every rule of docs/audit.md')
    or diag join("\n", @$bad);
is($unconfirmed, 0, 'every decision Redis took has its completion record');
ok(!(grep { exists $_->{dmac} } @all), 'no record carries a dmac');

my %status = ('allow' => '200', 'deny:stopped' => '503',
              'deny:rate_limited' => '429');
for my $d (sort keys %status) {
    my @r = grep { $_->{decision} eq $d } @audit;
    ok(@r >= 1, "there are $d records");
    my $ok = 0;
    for my $r (@r) {
        my @c = grep { $_->{_stream} eq $r->{_stream} && $_->{id} eq $r->{id} }
                @done;
        $ok++ if @c == 1 && $c[0]{decision} eq $d
                 && $c[0]{status} eq $status{$d};
    }
    is($ok, scalar @r, "each $d record has one completion saying $d, "
                       . "status $status{$d}");
}
ok(!(grep { my $r = $_; !$JukiTest::REDIS_DECIDES{$r->{decision}}
            && grep { $_->{id} eq $r->{id} } @done } @audit),
   'a decision the gateway took has no completion record');

# log_subrequest on and a mirror subrequest: one completion per audit id
my @mirror = grep { $_->{operator} eq 'op-mirror' } @audit;
is(scalar @mirror, 3, 'the mirrored requests are recorded');
for my $r (@mirror) {
    my $n = grep { $_->{id} eq $r->{id} } @done;
    is($n, 1, "one completion record for $r->{id}");
}

# NGINX's own refusals (TEST 6-11)
my $fp = JukiTest::fingerprints();
my @unverified = grep { $_->{decision} eq 'deny:unverified_certificate' }
                 @audit;
my @nginx = grep { $_->{uri} eq '' } @unverified;
is(scalar(grep { $_->{uri} eq '/v1/residents/' } @unverified), 1,
   'the one the module refused itself (TEST 12) is recorded once');
for my $name (qw(revoked expired untrusted)) {
    (my $want = lc $fp->{$name}[0]) =~ s/://g;
    $want = substr($want, 0, 32);            # A3: the first 16 bytes
    my @r = grep { $_->{cert} eq $want } @nginx;
    is(scalar @r, $name eq 'revoked' ? 2 : 1,
       "the refusal of the $name certificate is recorded with its "
       . "fingerprint");
}
is(scalar(grep { $_->{cert} eq '' } @nginx), 2,
   'no certificate, and plain HTTP to the TLS port: recorded, no cert');
is(scalar(grep { $_->{_stream} eq 'juki:{_}:audit' && $_->{uri} eq ''
                 && $_->{method} eq 'GET' && $_->{agency} eq ''
                 && $_->{operator} eq '' && check_record($_) } @nginx),
   scalar @nginx, 'in the stream of no agency, no path, gateway-bound mac');
is(scalar @nginx, 6, 'one record per refusal by nginx, none for others');

# --- flipping a decision with what the traffic showed

# every argument MONITOR printed (binary: its escapes undone), and the MACs
# of the A3 elements among them -- all a reader of the traffic holds
my @seen;
if (open(my $fh, '<', $monitor)) {
    while (my $l = <$fh>) {
        push @seen, JukiTest::monitor_args($l);
    }
    close $fh;
}
my @elements = grep { ($_->{phase} // '') ne 'invalid' }
               map { JukiTest::a3_decode($_) } grep { length > 20 } @seen;
my %hex = map { $_->{mac} => 1 } @elements;
ok((grep { $_ eq 'FCALL' } @seen)
   && (grep { ($_->{phase} // '') eq 'done' } @elements),
   'the reader saw the records and the completions go by');
ok(keys %hex >= 5, 'and ' . scalar(keys %hex) . ' MACs in them');

# a copy of the trail with CHANGE applied to each record (return 0 to drop)
sub variant {
    my $change = shift;
    my @v;
    for my $r (@all) {
        my %c = %$r;
        push @v, \%c if $change->(\%c);
    }
    return @v;
}

sub detected {
    my ($key, @v) = @_;
    my ($b) = JukiTest::trail_problems(@v);
    return scalar grep { index($_, $key) >= 0 || /writer/ } @$b;
}

my %flip = ('op-flip' => 'deny:rate_limited', 'op-limited' => 'allow',
            'op-stopped' => 'allow');

for my $op (sort keys %flip) {
    my ($t) = grep { $_->{operator} eq $op } @audit;
    ok($t, "the record of $op") or next;
    my ($c) = grep { $_->{_stream} eq $t->{_stream} && $_->{id} eq $t->{id} }
              @done;
    ok($c, "and its completion") or next;
    my $to = $flip{$op};
    my $key = "$t->{_stream} $t->{id}";
    my $is_t = sub { $_[0]{_stream} eq $t->{_stream} && $_[0]{id} eq $t->{id}
                     && !exists $_[0]{phase} };
    my $is_c = sub { $_[0]{_stream} eq $t->{_stream} && $_[0]{id} eq $t->{id}
                     && ($_[0]{phase} // '') eq 'done' };

    # the record's decision swapped, its mac kept or taken from the traffic
    my $missed = 0;
    my $tried = 0;
    for my $mac ($t->{mac}, sort keys %hex) {
        $tried++;
        $missed++ unless detected($key, variant(sub {
            $_[0]{decision} = $to, $_[0]{mac} = $mac if $is_t->($_[0]);
            1;
        }));
    }
    is($missed, 0, "$op: $t->{decision} -> $to with any of $tried MACs "
                   . 'seen: detected');

    # and the completion's decision swapped too, with any MAC seen
    $missed = 0;
    $tried = 0;
    for my $mac ($c->{mac}, sort keys %hex) {
        $tried++;
        $missed++ unless detected($key, variant(sub {
            $_[0]{decision} = $to if $is_t->($_[0]);
            $_[0]{decision} = $to, $_[0]{mac} = $mac if $is_c->($_[0]);
            1;
        }));
    }
    is($missed, 0, "$op: and its completion likewise: detected");

    # the completion removed: a gap in its writer's chain
    ok(detected($key, variant(sub {
        $_[0]{decision} = $to if $is_t->($_[0]);
        !$is_c->($_[0]);
    })), "$op: the completion removed from the middle of a chain: detected");
}

# the window that remains: a writer's last completion removed leaves its
# record unconfirmed (reported, not a break: a crash leaves one too)
{
    my ($t) = grep { $_->{operator} eq 'op-after' } @audit;
    my ($v_bad, $v_unconfirmed) = JukiTest::trail_problems(variant(sub {
        !($_[0]{id} eq $t->{id} && ($_[0]{phase} // '') eq 'done');
    }));
    is(scalar @$v_bad, 0, 'a chain\'s last completion removed: no break');
    is($v_unconfirmed, 1, 'but its record is counted unconfirmed');
}

# the same flip in Redis, as the reader would make it: the list is
# rewritten with the record's decision byte (its last, outside the mac)
# swapped
my ($vrc, $vout) = jukictl('verify');
{
    my ($t) = grep { $_->{operator} eq 'op-flip' } @audit;
    my $c = JukiTest::Conn->new(user => 'juki-admin');
    my $l = $c->cmd('LRANGE', $t->{_stream}, 0, -1);
    my $n = 0;
    for my $e (@$l) {
        my $d = JukiTest::a3_decode($e);
        next unless $d->{_type} eq 'A' && $d->{id} eq $t->{id};
        substr($e, -1) = chr(3);             # deny:rate_limited
        $n++;
    }
    is($n, 1, 'the record to flip found in its list');
    $c->cmd('DEL', $t->{_stream});
    $c->cmd('RPUSH', $t->{_stream}, @$l);
    $c->close;

    my ($r) = grep { $_->{id} eq $t->{id} && !exists $_->{phase} }
              audit_records();
    is($r->{decision}, 'deny:rate_limited', 'the stored decision is flipped');
    ok(check_record($r), 'the flipped record alone still verifies: its mac '
                         . 'does not cover the decision byte Redis appends');
    my ($b) = JukiTest::trail_problems(audit_records());
    ok((grep { /\Q$t->{id}\E: decision deny:rate_limited, completion says allow/ }
        @$b), 'the completion record gives the flip away')
        or diag join("\n", @$b);

    SKIP: {
        skip("build/jukictl does not read A3 records yet: $vout", 2)
            if $vrc != 0;
        my ($rc, $out) = jukictl('verify');
        is($rc, 1, 'jukictl verify fails after the flip');
        like($out, qr/\Q$t->{id}\E|decision/, 'and names it');
    }
}

unlink $monitor;

__DATA__

=== TEST 1: two allowed requests, the first one is the one flipped later
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?code=11100022233", "GET /v1/residents/"]
--- more_headers eval
["Juki-Purpose: pension.benefit\nJuki-Operator: op-flip",
 "Juki-Purpose: pension.benefit\nJuki-Operator: op-after"]
--- error_code eval
[200, 200]
--- no_error_log
[error]



=== TEST 2: rate limited by Redis: the completion says so after the 429
--- http_config eval
JukiTest::http_config(purpose_rate => {'rate.probe' => '1r/m burst=0'})
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/probe/1", "GET /v1/probe/2", "GET /v1/residents/"]
--- more_headers eval
["Juki-Purpose: rate.probe\nJuki-Operator: op-first",
 "Juki-Purpose: rate.probe\nJuki-Operator: op-limited",
 "Juki-Purpose: pension.benefit\nJuki-Operator: op-next"]
--- error_code eval
[200, 429, 200]
--- response_body_like eval
['"operator":"op-first"',
 '^\{"error":"rate_limited","audit_id":"[0-9a-f]{16}-\d+"\}$',
 '"operator":"op-next"']



=== TEST 3: stopped by Redis: the completion says so after the 503
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{shibuya-city}:stop', 'drill');
--- request eval
["GET /v1/residents/", "GET /v1/residents/"]
--- more_headers eval
["X-Test-Cert: municipality\nJuki-Purpose: health.insurance\nJuki-Operator: op-stopped",
 "Juki-Purpose: pension.benefit\nJuki-Operator: op-next"]
--- error_code eval
[503, 200]
--- response_body_like eval
['^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$',
 '"operator":"op-next"']



=== TEST 4: log_subrequest on and a mirror: one completion per audit id
--- http_config eval
JukiTest::http_config(location => 'mirror /v1/mirror; log_subrequest on;')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-mirror
--- error_code eval
[200, 200, 200]
--- error_log
subrequest to "/v1/mirror" refused



=== TEST 5: a gateway decision has no completion
--- request
GET /v1/admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-gw
--- error_code: 403



=== TEST 6: NGINX refuses a revoked certificate itself: recorded
--- request
GET /v1/residents/?code=12312312312
--- more_headers
X-Test-Cert: revoked
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: The SSL certificate error
--- error_log eval
qr/juki: denied, unverified_certificate by nginx, agency: "[0-9a-f]{64}", audit id: "[0-9a-f]{16}-\d+"/



=== TEST 7: an expired certificate
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: expired
--- error_code: 400
--- response_body_like: The SSL certificate error
--- error_log
juki: denied, unverified_certificate by nginx



=== TEST 8: a certificate of another CA
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: untrusted
--- error_code: 400
--- response_body_like: The SSL certificate error
--- error_log
juki: denied, unverified_certificate by nginx



=== TEST 9: no certificate (496)
--- request
GET /nocert/v1/residents/
--- error_code: 400
--- response_body_like: No required SSL certificate was sent
--- error_log
juki: denied, unverified_certificate by nginx, agency: ""



=== TEST 10: plain HTTP to the TLS port (497)
--- config eval
JukiTest::client_config() . <<'EOF'
    location /plain-to-tls/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_GW_PORT/;
        proxy_set_header Host localhost;
    }
EOF
--- request
GET /plain-to-tls/v1/residents/
--- error_code: 400
--- response_body_like: The plain HTTP request was sent to HTTPS port
--- error_log
juki: denied, unverified_certificate by nginx, agency: ""



=== TEST 11: ssl_verify_client optional: NGINX refuses a revoked one too
--- request
GET /v1/residents/
--- more_headers
X-Test-Gw: optional
X-Test-Cert: revoked
--- error_code: 400
--- error_log
juki: denied, unverified_certificate by nginx



=== TEST 12: ssl_verify_client optional_no_ca lets an untrusted one reach the module, which records it once
--- request
GET /v1/residents/
--- more_headers
X-Test-Gw: optional_no_ca
X-Test-Cert: untrusted
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$
--- no_error_log
by nginx
