# No resident code in any log line or record, whatever the outcome; no
# subrequest slips past the decision and the record.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

add_block_preprocessor(\&juki_defaults);

redis_flush();

run_tests();

my @audit = grep { !exists $_->{phase} } audit_records();
my ($unknown) = grep { $_->{decision} eq 'deny:unknown_agency' } @audit;
ok($unknown, 'the unknown agency is audited');
is($unknown->{uri}, '/v1/residents/{code}/history',
   'with the code masked in the path');
is($unknown->{subject}, JukiTest::pseudonym('34567890123'),
   'and the resident pseudonym recorded');
unlike(dump_redis(), qr/34567890123|45678901234|56789012345/,
       'no resident code anywhere in redis');

__DATA__

=== TEST 1: a certificate of no agency: the code is masked, the resident recorded
--- request
GET /v1/residents/34567890123/history?code=34567890123
--- more_headers
X-Test-Cert: unmapped
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like: unknown_agency
--- error_log
juki: denied, unknown_agency
--- no_error_log
34567890123



=== TEST 2: the backend down: the upstream line of the error log keeps no code
--- http_config eval
JukiTest::http_config(upstream => 'http://127.0.0.1:1')
--- request
GET /v1/residents/?code=45678901234
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 502
--- error_log eval
qr/connect\(\) failed .*upstream: "http:\/\/127\.0\.0\.1:1\/v1\/residents\/\?\.\.\."/
--- no_error_log
45678901234



=== TEST 3: a percent-encoded code is masked in the logged request line too
--- http_config eval
JukiTest::http_config(upstream => 'http://127.0.0.1:1')
--- request
GET /v1/residents/?code=5678901234%35
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 502
--- no_error_log eval
[qr/56789012345/, qr/5678901234%35/]



=== TEST 4: a subrequest into a juki location is refused, nothing forwarded
--- config eval
JukiTest::client_config() . <<'EOF';
    location = /ssi {
        ssi on;
        default_type text/html;
        return 200 'before <!--# include virtual="/inner/v1/residents/" --> after';
    }
    location /inner/ {
        juki on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
EOF
--- request
GET /ssi
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_unlike: "agency"
--- error_log
subrequest to "/inner/v1/residents/" refused



=== TEST 5: a code spelled with an escape in the path is not logged either
--- http_config eval
JukiTest::http_config(upstream => 'http://127.0.0.1:1')
--- request
GET /v1/residents/5678901234%35?code=56789012345
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 502
--- error_log
"GET /v1/residents/{code}?... HTTP/1.0"
--- no_error_log eval
[qr/56789012345/, qr/5678901234%35/]
