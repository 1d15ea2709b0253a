# Self-test of the bundled Test::Nginx::Socket harness (t/lib): every
# supported section used positively against stock nginx modules only.
# It loads the bundled harness by path whatever PERL5LIB says (it also
# passes under the genuine Test::Nginx::Socket, which is how its
# expectations were checked).
use FindBin ();
use lib "$FindBin::Bin/../lib";
use Test::Nginx::Socket;

BEGIN {
    $Test::Nginx::Socket::IsBundledHarness
        or die "t/harness/01-sections.t: the bundled harness was not loaded "
             . "from $FindBin::Bin/../lib\n";
}

$ENV{TEST_NGINX_HARNESS_GREETING} = 'hello from env';

repeat_each(2);
env_to_nginx('HARNESS_ENV_A', 'HARNESS_ENV_B=123');

# A block preprocessor giving blocks without --- config a default one.
add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location = /default {
        return 200 "default config\n";
    }
_EOC_
    }
});

# Per block and repeat: "status code ok" + the section assertions counted
# below (the skip_nginx block emits its 2 assertions as skips).
plan tests => repeat_each() * (
      2     # TEST 1: status, body
    + 2     # TEST 2: status, body_like
    + 2     # TEST 2b: status, body_unlike
    + 4     # TEST 3: status, 2 headers, body
    + 4     # TEST 4: status, header like, raw like, body
    + 2     # TEST 5: error_code_like, body
    + 2 * 2 # TEST 6: two requests x (status, body)
    + 3     # TEST 7: status, body, no_error_log
    + 4     # TEST 8: status, error_log x2, grep_error_log_out
    + 3     # TEST 9: status, body, no_error_log (log_level)
    + 2     # TEST 10: status, body (user_files)
    + 2     # TEST 11: status, body (packets + delay through a proxy)
    + 2     # TEST 12: raw_request
    + 3 * 2 # TEST 13: pipelined x (status, body)
    + 2     # TEST 14: default config from the preprocessor
    + 2     # TEST 15: skip_nginx (false: runs)
    + 2     # TEST 16: skip_nginx (true: 2 skips)
    + 2     # TEST 17: init
    + 0     # TEST 18: timeout + abort + ignore_response
    + 2     # TEST 19: server_name + main_config
) + 2 * 1   # (no_)shutdown_error_log (once per block) in TEST 7 and TEST 9
  + 0;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: plain return, env expansion in config
--- config
    location = /t {
        return 200 "$TEST_NGINX_HARNESS_GREETING\n";
    }
--- request
GET /t
--- response_body
hello from env



=== TEST 2: response_body_like
--- config
    location = /t {
        return 200 "the answer is 42\n";
    }
--- request
    GET /t
--- response_body_like chomp
^the answer is \d+$



=== TEST 2b: response_body_unlike
--- config
    location = /t {
        return 200 "the answer is 42\n";
    }
--- request
    GET /t
--- response_body_unlike: answer is 43



=== TEST 3: response_headers, absent header, error_code
--- config
    location = /t {
        add_header X-Foo "bar baz";
        return 201 "created";
    }
--- request
GET /t
--- error_code: 201
--- response_headers
X-Foo: bar baz
!X-Missing
--- response_body chomp
created



=== TEST 4: response_headers_like / raw_response_headers_like / more_headers
--- config
    location = /t {
        add_header X-Echo $http_x_input;
        return 200 "in=$http_x_input host=$host\n";
    }
--- request
GET /t
--- more_headers
# comment lines are ignored
X-Input: abc
--- response_headers_like
Server: nginx(/[\d.]+)?
--- raw_response_headers_like: X-Echo: abc\r\n
--- response_body
in=abc host=localhost



=== TEST 5: error_code_like
--- request
GET /does-not-exist.html
--- error_code_like: ^40[0-9]$
--- response_body_like: 404 Not Found



=== TEST 6: request eval with two requests, eval'd expectations
--- config
    location /r {
        return 200 "uri=$uri args=$args\n";
    }
--- request eval
["GET /r/a?x=1", "GET /r/b"]
--- response_body eval
["uri=/r/a args=x=1\n", "uri=/r/b args=\n"]



=== TEST 7: no_error_log, shutdown_error_log
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
# a comment before the request line
GET /t
--- response_body
ok
--- no_error_log
[error]
--- shutdown_error_log
exit



=== TEST 8: error_log (plain + eval qr//) and grep_error_log
--- request
GET /missing.txt
--- error_code: 404
--- error_log eval
["No such file or directory", qr/open\(\) "\S+missing\.txt" failed/]
--- grep_error_log eval: qr/\[error\] .*?open\(\) "[^"]*\/missing\.txt"/
--- grep_error_log_out eval
qr/\A\[error\] \d+#\d+: \*\d+ open\(\) "[^"]+\/missing\.txt"\n\z/



=== TEST 9: per-block log_level
(the request's own debug lines are absent; in HUP mode the log of the
block starts before the reload, where the master still logs at debug)
--- log_level: warn
--- config
    location = /t {
        return 200 "quiet\n";
    }
--- request
GET /t?quiet
--- response_body
quiet
--- no_error_log eval
qr/\[debug\] .*http request line: "GET \/t\?quiet /
--- no_shutdown_error_log
[notice]



=== TEST 10: user_files served by the root location
--- user_files
>>> a/b.txt
file content
>>> index.html 199801171935.33
<p>index</p>
--- request
GET /a/b.txt
--- response_body
file content



=== TEST 11: request split into packets, with a delay, through proxy_pass
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / {
            return 200 "backend got [$http_x_body] len=$http_content_length\n";
        }
    }
--- config
    location = /echo {
        client_body_buffer_size 64k;
        proxy_set_header X-Body $request_body;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- request eval
[["POST /echo\nhel", {value => "lo world", delay_before => 0.05}]]
--- response_body
backend got [hello world] len=11



=== TEST 12: raw_request in packets (HTTP/1.0)
--- config
    location = /raw {
        return 200 "proto=$server_protocol\n";
    }
--- raw_request eval
["GET /raw HTT", "P/1.0\r\nHost: localhost\r\n\r\n"]
--- response_body
proto=HTTP/1.0



=== TEST 13: pipelined requests (GET, POST, HEAD last)
--- config
    location /p {
        return 200 "$request_method $uri\n";
    }
--- pipelined_requests eval
["GET /p1", "POST /p3\nbody", "HEAD /p2"]
--- response_body eval
["GET /p1\n", "POST /p3\n", ""]



=== TEST 14: default config from add_block_preprocessor
--- request
GET /default
--- response_body
default config



=== TEST 15: skip_nginx whose condition is false runs the block
--- skip_nginx
2: < 0.1.0
--- config
    location = /t { return 200 "ran\n"; }
--- request
GET /t
--- response_body
ran



=== TEST 16: skip_nginx whose condition is true skips the block
--- skip_nginx: 2: >= 0.1.0
--- config
    location = /t { return 200 "ran\n"; }
--- request
GET /t
--- response_body
never compared



=== TEST 17: init runs Perl code before the request
--- init
$main::InitRan = ($main::InitRan || 0) + 1;
--- config
    location = /t { return 200 "ok\n"; }
--- request eval
"GET /t?init=" . ($main::InitRan ? "yes" : "no")
--- response_body
ok



=== TEST 18: timeout + abort: a slow response is not a failure
--- config
    location = /slow {
        limit_rate 1;
        return 200 "0123456789012345678901234567890123456789";
    }
--- request
GET /slow
--- timeout: 200ms
--- abort
--- ignore_response



=== TEST 19: server_name section and main_config
--- main_config
worker_rlimit_nofile 1024;
--- server_name: harness.example
--- config
    location = /t { return 200 "server=$server_name\n"; }
--- request
GET /t
--- response_body
server=harness.example



=== TEST 20: SKIP'd blocks are not run (nor counted by blocks())
--- SKIP
--- no_such_section
--- request
GET /t
