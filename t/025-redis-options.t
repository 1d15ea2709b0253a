# juki_redis over a unix socket, with an ACL user and password, a database
# number and several connections.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

add_block_preprocessor(\&juki_defaults);

JukiTest::redis3_start();

$ENV{TEST_NGINX_REDIS3} = JukiTest::redis3_dir() . '/redis.sock';

run_tests();

like(JukiTest::redis3('-n', 3, 'LLEN', 'juki:{pension-service}:audit'),
     qr/^[1-9]\d*$/m, 'the records went to database 3');
like(JukiTest::redis3('-n', 0, 'DBSIZE'), qr/^0$/m, 'and not to database 0');

JukiTest::redis3_stop();

__DATA__

=== TEST 1: unix socket, ACL user and password, db=3, four connections
--- http_config eval
JukiTest::http_config(redis => "unix:$ENV{TEST_NGINX_REDIS3} user=juki-gw password=gw-secret db=3 connections=4")
--- request eval
["GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/",
 "GET /v1/residents/", "GET /v1/residents/"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code eval
[200, 200, 200, 200, 200]
--- no_error_log
[error]



=== TEST 2: a wrong password: 503, and the log says why
--- http_config eval
JukiTest::http_config(redis => "unix:$ENV{TEST_NGINX_REDIS3} user=juki-gw password=wrong db=3")
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 503
--- response_body
{"error":"audit_unavailable"}
--- wait: 1.5
--- error_log
refused the connection set-up
