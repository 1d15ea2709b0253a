# Misuse watch: distinct residents per operator and bursts of denials per
# agency, counted inside the one Redis round trip; stop switches set,
# alerts published on juki:alerts and logged at alert level.  A block named
# TEST Nb or Nc continues the one before it (the counts live in Redis; the
# file runs in order): its log checks then sit on the one request whose
# log they are about, as the genuine Test::Nginx checks the log after every
# request.

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
JukiTest::subscribe_alerts();

run_tests();

my @alerts = JukiTest::alerts();
my @distinct = grep { /"rule":"distinct_subjects"/ && /"operator":"op-a"/ }
               @alerts;
is(scalar @distinct, 1, 'exactly one alert for the operator past the limit');
like($distinct[0] // '', qr/"count":4/, 'the alert counts 4 residents');
like($distinct[0] // '', qr/"threshold":3/, 'and names the threshold');
like($distinct[0] // '', qr/"agency":"pension-service"/, 'and the agency');
like($distinct[0] // '', qr/"node":"test-node"/, 'and the node');
like($distinct[0] // '', qr/"action":"stop_operator"/, 'and the action');
like($distinct[0] // '', qr/"dry_run":false/, 'not a dry run');
like($distinct[0] // '', qr/"time":\d{13}/, 'with the time in ms');

is(scalar(grep { /"operator":"op-b"/ } @alerts), 0,
   'lookups of one resident raise no alert');

my @dry = grep { /"operator":"op-c"/ } @alerts;
is(scalar @dry, 1, 'the dry-run rule alerts once');
like($dry[0] // '', qr/"dry_run":true/, 'and says it is a dry run');

my @bursts = grep { /"rule":"denials"/ } @alerts;
is(scalar @bursts, 1, 'one alert for the burst of denials');
like($bursts[0] // '', qr/"agency":"shibuya-city"/, 'naming the agency');
unlike($bursts[0] // '', qr/"operator"/, 'and no operator');

unlike(join("\n", @alerts), qr/1000000000\d/,
       'no resident code in any alert');
unlike(dump_redis(), qr/1000000000\d/, 'no resident code anywhere in redis');

__DATA__

=== TEST 1: up to N distinct residents the operator goes on, no rule fires
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?code=10000000001", "GET /v1/residents/?code=10000000002",
 "GET /v1/residents/?code=10000000003"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-a
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['"operator":"op-a"', '"operator":"op-a"', '"operator":"op-a"']
--- no_error_log
anomaly rule



=== TEST 1b: the N+1st distinct resident fires the rule and stops the operator
(continues TEST 1: the counts live in Redis; the file runs in order)
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- request
GET /v1/residents/?code=10000000004
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-a
--- error_code: 200
--- response_body_like: "operator":"op-a"
--- grep_error_log eval
qr/anomaly rule \d+ fired: [^,]+/
--- grep_error_log_out
anomaly rule 1 fired: distinct residents 4 > 3 in 3600 s
--- error_log eval
qr/\[alert\] \d+#\d+: juki: anomaly rule 1 fired: [^,]+, action stop_operator, alert published on juki:alerts/



=== TEST 1c: the stopped operator gets 503, even for a resident seen before; the rule does not fire again
(continues TEST 1b)
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- request
GET /v1/residents/?code=10000000001
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-a
--- error_code: 503
--- response_body_like: ^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$
--- no_error_log
anomaly rule



=== TEST 2: the stop names the rule; other operators go on
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- init
JukiTest::redis('SET', 'juki:{pension-service}:stop:op:op-z', 'x');
--- request
GET /v1/residents/?code=10000000009
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-y
--- error_code: 200
--- response_body_like: "operator":"op-y"



=== TEST 3: N lookups of one resident do not count as N residents
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?code=10000000005", "GET /v1/residents/?code=10000000005",
 "GET /v1/residents/?code=10000000005", "GET /v1/residents/?code=10000000005",
 "GET /v1/residents/?code=10000000005", "GET /v1/residents/?code=10000000005"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-b
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- no_error_log
anomaly rule



=== TEST 4: dry_run: up to N distinct residents nothing fires
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=2 window=1h dry_run;')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?code=10000000011", "GET /v1/residents/?code=10000000012"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-c
--- error_code eval
[200, 200]
--- no_error_log
anomaly rule



=== TEST 4b: dry_run alerts without stopping
(continues TEST 4)
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=2 window=1h dry_run;')
--- request
GET /v1/residents/?code=10000000013
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-c
--- error_code: 200
--- error_log eval
qr/\[alert\] \d+#\d+: juki: anomaly rule 1 fired: distinct residents 3 > 2 in 3600 s, action stop_operator \(dry run: nothing stopped\)/



=== TEST 4c: dry_run: the operator goes on and the rule does not fire again
(continues TEST 4b)
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=2 window=1h dry_run;')
--- request
GET /v1/residents/?code=10000000014
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-c
--- error_code: 200
--- no_error_log
anomaly rule



=== TEST 5: up to N denials nothing fires
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly denials=3 window=10m;')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/"]
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code eval
[403, 403, 403]
--- response_body_like eval
['purpose_not_permitted', 'purpose_not_permitted', 'purpose_not_permitted']
--- no_error_log
anomaly rule



=== TEST 5b: the N+1st denial fires the rule and stops the agency
(continues TEST 5)
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly denials=3 window=10m;')
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like: purpose_not_permitted
--- error_log eval
qr/\[alert\] \d+#\d+: juki: anomaly rule 1 fired: denials 4 > 3 in 600 s, action stop_agency/



=== TEST 5c: the stopped agency gets 503 for any purpose; the rule does not fire again
(continues TEST 5b)
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly denials=3 window=10m;')
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: health.insurance
Juki-Operator: op-1
--- error_code: 503
--- response_body_like: ^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$
--- no_error_log
anomaly rule



=== TEST 6: jukictl resume --operator lifts an automatic stop
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{pension-service}:stop:op:op-r',
                'anomaly distinct_subjects: 4 > 3 in 3600s');
JukiTest::later(0.5, sub {
    JukiTest::jukictl('resume', '--agency', 'pension-service',
                      '--operator', 'op-r', '--reason', 'reviewed');
});
--- request eval
["GET /v1/residents/?code=10000000021", "GET /slow",
 "GET /v1/residents/?code=10000000021"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-r
--- error_code eval
[503, 200, 200]
--- timeout: 6
