# The one Redis round trip: stop switches, rate limits, the audit record and
# its fields, and failing closed when Redis is down, killed or paused.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

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
redis('CONFIG', 'RESETSTAT');
redis2_stop();

run_tests();

redis2_stop();

my @all = audit_records();
my @audit = grep { !exists $_->{phase} } @all;

# group commit: the records went by FCALL, at most one per record (fewer
# when requests shared a turn), and never by EVALSHA or XADD (the RPUSHes the
# function runs are counted in commandstats too)
my $stats = redis('INFO', 'commandstats');
my ($calls) = $stats =~ /cmdstat_fcall:calls=(\d+)/;
ok(($calls // 0) >= 1 && $calls <= scalar @all,
   'the records went to Redis by FCALL, at most one call per record')
    or diag "fcall calls: " . ($calls // 'none') . ", records: " . @all;
unlike($stats, qr/cmdstat_(?:evalsha|xadd|script):/,
       'no EVALSHA, XADD or SCRIPT');

my %by;
$by{$_->{decision}}++ for grep { $_->{purpose} eq 'rate.probe' } @audit;
is($by{'allow'}, 5, 'fan-out: exactly the burst passed the limit');
is($by{'deny:rate_limited'}, 15, 'fan-out: every other request limited');

# the fields of the first allowed record, read back from its A3 element
my ($r) = grep { $_->{decision} eq 'allow' && $_->{operator} eq 'op-fields' }
          @audit;
ok($r, 'the allowed record is in the trail');
is($r->{_stream}, 'juki:{pension-service}:audit', 'stream of the agency');
like($r->{id}, qr/^[0-9a-f]{16}-\d+$/, 'id');
is($r->{id}, "$r->{writer}-$r->{seq}", 'id is writer-seq');
like($r->{ts}, qr/^\d{13}$/, 'ts in ms');
ok(abs($r->{ts} / 1000 - time) < 600, 'ts is now');
is($r->{node}, 'test-node', 'node');
like($r->{writer}, qr/^[0-9a-f]{16}$/, 'writer');
like($r->{kid}, qr/^[0-9a-f]{16}$/, 'kid');
is($r->{agency}, 'pension-service', 'agency');
is($r->{kind}, 'national', 'kind');
my $fp = JukiTest::fingerprints()->{national}[0];
$fp =~ s/://g;
is($r->{cert}, substr(lc $fp, 0, 32),
   'cert is the SHA-256 of the client certificate (its first 16 bytes)');
is($r->{operator}, 'op-fields', 'operator');
is($r->{purpose}, 'pension.benefit', 'purpose');
is($r->{subject}, JukiTest::pseudonym('11122233344'),
   'subject is the keyed pseudonym');
is($r->{method}, 'GET', 'method');
is($r->{uri}, '/v1/residents/', 'uri without the query');
ok(check_record($r), 'its mac verifies (A3, gdecision 0: Redis decided)');

my ($done) = grep { ($_->{phase} // '') eq 'done' && $_->{id} eq $r->{id} }
             @all;
ok($done, 'completion record');
is($done->{status}, '200', 'completion status');
like($done->{bytes}, qr/^\d+$/, 'completion bytes');
like($done->{upstream_ms}, qr/^\d+$/, 'completion upstream time');

unlike(dump_redis(), qr/11122233344/, 'no resident code anywhere in redis');

my ($rc, $out) = jukictl('verify');
is($rc, 0, 'jukictl verify passes on the trail the gateway wrote')
    or diag $out;

__DATA__

=== TEST 1: the audit record of an allowed request
--- init
JukiTest::redis_reset();
--- request
GET /v1/residents/?code=11122233344
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-fields
--- error_code: 200
--- response_body_like: "audit_id":"[0-9a-f]{16}-\d+"
--- no_error_log
[error]
[alert]



=== TEST 2: the global stop switch
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:stop', 'leak drill');
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 503
--- response_body_like chomp
^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 3: the agency stop switch stops that agency
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{pension-service}:stop', 'suspected leak');
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 503
--- response_body_like chomp
^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 4: the agency stop switch leaves other agencies alone
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{pension-service}:stop', 'suspected leak');
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: health.insurance
Juki-Operator: op-1
--- error_code: 200



=== TEST 5: the operator stop switch stops that operator
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{pension-service}:stop:op:op-7', 'review');
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-7
--- error_code: 503
--- response_body_like chomp
^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 6: the operator stop switch leaves other operators alone
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{pension-service}:stop:op:op-7', 'review');
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-8
--- error_code: 200



=== TEST 7: rate 1r/m burst=1: two pass, the third is limited
--- http_config eval
JukiTest::http_config(purpose_rate => {'pension.benefit' => '1r/m burst=1'})
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?a=1", "GET /v1/residents/?a=2", "GET /v1/residents/?a=3"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code eval
[200, 200, 429]
--- response_body_like eval
['"agency":"pension-service"', '"agency":"pension-service"',
 '^\{"error":"rate_limited","audit_id":"[0-9a-f]{16}-\d+"\}$']



=== TEST 8: 429 carries Retry-After and the RateLimit headers
--- http_config eval
JukiTest::http_config(purpose_rate => {'pension.benefit' => '1r/m burst=1'})
--- init
JukiTest::redis_reset();
my ($s, $us) = JukiTest::redis('TIME') =~ /"(\d+)".*"(\d+)"/s;
# a theoretical arrival time 300 s ahead: the next request may come in 240 s
JukiTest::redis('HSET', 'juki:{pension-service}:rl', 'pension.benefit',
                ($s + 300) * 1000000 + $us);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 429
--- response_headers_like
Retry-After: 2[234]\d
RateLimit-Limit: 2
RateLimit-Remaining: 0
RateLimit-Reset: 2[234]\d
--- response_body_like chomp
^\{"error":"rate_limited","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 9: the agency-wide limit counts every purpose of the agency
--- http_config eval
JukiTest::http_config(agency_rate => {'shibuya-city' => '1r/m burst=2'})
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/"]
--- more_headers eval
["X-Test-Cert: municipality\r\nJuki-Purpose: tax.assessment\r\nJuki-Operator: op-1",
 "X-Test-Cert: municipality\r\nJuki-Purpose: school.enrolment\r\nJuki-Operator: op-1",
 "X-Test-Cert: municipality\r\nJuki-Purpose: health.insurance\r\nJuki-Operator: op-1",
 "X-Test-Cert: municipality\r\nJuki-Purpose: health.insurance\r\nJuki-Operator: op-2"]
--- error_code eval
[200, 200, 200, 429]



=== TEST 10: twenty concurrent requests, burst=4: exactly five pass
--- http_config eval
JukiTest::http_config(purpose_rate => {'rate.probe' => '1r/m burst=4'})
--- init
JukiTest::redis_reset();
--- request
GET /fanout/
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: rate.probe
Juki-Operator: op-1
--- error_code: 200
--- response_body_like eval
qr/\A(?=(?:.*?"agency":"shibuya-city"){5})(?!(?:.*?"agency":"shibuya-city"){6})(?=(?:.*?"error":"rate_limited"){15})(?!(?:.*?"error":"rate_limited"){16})/s



=== TEST 11: Redis not running at start: 503, then served without a reload
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '200ms')
--- init
JukiTest::redis2_stop();
# the cause is logged once a second: not in the second of a reload (HUP)
select(undef, undef, undef, 1.1);
JukiTest::later(0.5, sub { JukiTest::redis2_start() });
--- request eval
["GET /v1/residents/", "GET /slow", "GET /v1/residents/"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code eval
[503, 200, 200]
--- response_body_like eval
['^\{"error":"audit_unavailable"\}$', '\.\.\.', '"agency":"pension-service"']
--- timeout: 6



=== TEST 11b: Redis not running: 503, and the cause is logged
(the log is checked after every request: here on the one it is about)
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '200ms')
--- init
JukiTest::redis2_stop();
# the cause is logged once a second: not in the second of a reload (HUP)
select(undef, undef, undef, 1.1);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 503
--- response_body_like: ^\{"error":"audit_unavailable"\}$
--- error_log eval
qr/juki: redis 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS2_PORT} unavailable: /
--- timeout: 6



=== TEST 12: Redis killed in the middle: 503, then recovery
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '200ms')
--- init
JukiTest::redis2_start();
JukiTest::later(0.5, sub { JukiTest::redis2_kill() });
JukiTest::later(2.6, sub { JukiTest::redis2_start() });
--- request eval
["GET /v1/residents/", "GET /slow", "GET /v1/residents/", "GET /slow", "GET /v1/residents/"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code eval
[200, 200, 503, 200, 200]
--- timeout: 8



=== TEST 12b: Redis lost under a connected worker: the loss is logged, 503
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '200ms')
--- init
JukiTest::redis2_start();
JukiTest::redis2_wait_client(5) or die "no worker connected to the second redis\n";
# the loss is logged once a second: not in the second of a failed connect
select(undef, undef, undef, 1.1);
JukiTest::redis2_kill();
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 503
--- response_body_like: ^\{"error":"audit_unavailable"\}$
--- error_log eval
qr/juki: redis 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS2_PORT} connection lost: /
--- timeout: 6



=== TEST 13: Redis paused past the timeout: 503 within the timeout, then recovery
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '200ms')
--- init
JukiTest::redis2_start();
JukiTest::redis2_pause(1000);
--- request eval
["GET /v1/residents/", "GET /slow", "GET /v1/residents/"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code eval
[503, 200, 200]
--- response_headers_like eval
["X-Upstream-Time: 0\\.(19\\d|2\\d\\d|3[0-4]\\d)", "X-Upstream-Time: .*",
 "X-Upstream-Time: .*"]
--- response_body_like eval
['^\\{"error":"audit_unavailable"\\}$', '\\.\\.\\.', '"agency":"pension-service"']
--- timeout: 8



=== TEST 13b: Redis paused past the timeout: 503, and the timeout is logged
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '200ms')
--- init
JukiTest::redis2_start();
JukiTest::redis2_pause(1000);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 503
--- response_headers_like
X-Upstream-Time: 0\.(19\d|2\d\d|3[0-4]\d)
--- response_body_like: ^\{"error":"audit_unavailable"\}$
--- error_log eval
qr/juki: redis 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS2_PORT} timed out after 200 ms, 1 commands pending/
--- timeout: 8



=== TEST 14: the client gives up while its request waits: a late reply is safe
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(redis => JukiTest::redis2(), timeout => '1s')
--- init
JukiTest::redis2_start();
JukiTest::redis2_pause(600);
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- timeout: 0.2
--- abort
--- ignore_response
--- wait: 1
--- no_error_log
[alert]
[crit]
exited on signal
