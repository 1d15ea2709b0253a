# juki_status: counters shared by two workers, as JSON and in the
# Prometheus text format.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
master_on();
workers(2);
log_level('info');

our $Status = <<'EOF_S';
    location = /juki/status {
        juki_status;
        allow 127.0.0.1;
        deny all;
    }
EOF_S

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config', JukiTest::client_config() . $Status)
        unless defined $block->config;
    juki_defaults($block);
});

redis_flush();

run_tests();

__DATA__

=== TEST 1: JSON counters match the requests made, across two workers
--- http_config eval
JukiTest::http_config(http => 'juki_agency zz-block-1 { kind national; subject "CN=zz1"; purposes pension.benefit; }')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?code=12345678901", "GET /v1/residents/", "GET /v1/residents/",
 "GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/",
 "GET /juki/status"]
--- more_headers eval
["Juki-Purpose: pension.benefit\r\nJuki-Operator: op-1",
 "Juki-Purpose: pension.benefit\r\nJuki-Operator: op-1",
 "Juki-Purpose: pension.benefit\r\nJuki-Operator: op-1",
 "Juki-Operator: op-1",
 "X-Test-Cert: municipality\r\nJuki-Purpose: tax.assessment\r\nJuki-Operator: op-2",
 "X-Test-Cert: unmapped\r\nJuki-Purpose: tax.assessment\r\nJuki-Operator: op-2",
 ""]
--- error_code eval
[200, 200, 200, 400, 200, 403, 200]
--- response_headers_like eval
["", "", "", "", "", "", "Content-Type: application/json"]
--- response_body_like eval
['', '', '', '', '', '',
 qr/\A\{"requests":\[\{"agency":"","decisions":\{"allow":0,"deny:unverified_certificate":0,"deny:unknown_agency":1,[^}]*\}\},\{"agency":"example-bank","decisions":\{"allow":0,[^}]*\}\},\{"agency":"pension-service","decisions":\{"allow":3,"deny:unverified_certificate":0,"deny:unknown_agency":0,"deny:bad_purpose":1,"deny:bad_operator":0,"deny:purpose_not_permitted":0,"deny:resident_code_forbidden":0,"deny:bad_request":0,"deny:stopped":0,"deny:rate_limited":0,"deny:audit_unavailable":0\}\},\{"agency":"shibuya-city","decisions":\{"allow":1,[^}]*\}\},\{"agency":"zz-block-1","decisions":\{[^}]*\}\}\],"redis":\{"roundtrip":\{"buckets":\{"0\.00025":\d+,[^}]*"\+Inf":(\d+)\},"sum_seconds":\d+\.\d{6},"count":\1\},"errors":0,"reconnects":0,"waiting":0\},"completion_failures":0,"anomalies_fired":0\}\n\z/]



=== TEST 2: Prometheus text on request, valid by the exposition format
--- http_config eval
JukiTest::http_config(http => 'juki_agency zz-block-2 { kind national; subject "CN=zz2"; purposes pension.benefit; }')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/", "GET /v1/residents/",
 "GET /juki/status?format=prometheus"]
--- more_headers eval
["Juki-Purpose: pension.benefit\r\nJuki-Operator: op-1",
 "Juki-Purpose: nonsense\r\nJuki-Operator: op-1", ""]
--- error_code eval
[200, 403, 200]
--- response_headers_like eval
["", "", "Content-Type: text/plain; version=0.0.4; charset=utf-8"]
--- response_body_like eval
['', '',
 qr/(?=.*^juki_requests_total\{agency="pension-service",decision="allow",reason=""\} 1$)(?=.*^juki_requests_total\{agency="pension-service",decision="deny",reason="purpose_not_permitted"\} 1$)(?=.*^# TYPE juki_redis_roundtrip_seconds histogram$)(?=.*^juki_redis_roundtrip_seconds_bucket\{le="\+Inf"\} (\d+)\n.*^juki_redis_roundtrip_seconds_count \1\n)(?=.*^juki_requests_waiting 0$)/ms]



=== TEST 3: Accept: text/plain asks for the Prometheus format too
--- request
GET /juki/status
--- more_headers
Accept: text/plain
--- error_code: 200
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body_like eval
qr/^# TYPE juki_requests_total counter$/m



=== TEST 4: the Prometheus output follows the exposition format line by line
--- request
GET /juki/status?format=prometheus
--- error_code: 200
--- response_body_like eval
qr/\A(?:(?:# HELP [a-z_]+ [^\n]+|# TYPE [a-z_]+ (?:counter|gauge|histogram)|[a-z_]+_(?:total|bucket|sum|count|waiting)(?:\{[a-z_]+="[^"\\\n]*"(?:,[a-z_]+="[^"\\\n]*")*\})? \d+(?:\.\d+)?)\n)+\z/



=== TEST 5: an unknown format is a client error
--- request
GET /juki/status?format=xml
--- error_code: 400



=== TEST 6: only GET and HEAD
--- request
POST /juki/status
x
--- error_code: 405
