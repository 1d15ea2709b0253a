# Meta-tests of the bundled Test::Nginx::Socket harness (t/lib): each case
# writes a small .t file into a temporary directory, runs it with a nested
# perl -I t/lib (own port and servroot) and checks that a wrong expectation
# really FAILS (non-zero exit, the expected "not ok" line), that unsupported
# sections fail loudly, and that the process management works.
#
# These cases exercise the bundled harness specifically, whichever
# Test::Nginx::Socket the outer prove uses.  Section 9b pins down the
# genuine library's semantics (log checks after every request, per-request
# arrays, ...) and, when the genuine library is on @INC, runs the same cases
# under it to show that both give the same verdict.
use strict;
use warnings;
use Test::More;
use File::Temp ();
use File::Spec ();
use Cwd ();
use IO::Socket::INET ();

my $root = Cwd::getcwd();
my $lib  = File::Spec->catdir($root, 't', 'lib');
plan skip_all => "run from the repository root (t/lib/Test/Nginx/Socket.pm not found)"
    unless -f "$lib/Test/Nginx/Socket.pm";

my $tmp = File::Temp::tempdir('harness-meta-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $n = 0;

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1) or die $!;
    my $p = $s->sockport;
    close $s;
    return $p;
}

# run_nested($head_perl, $data, %env) -> ($exit_code, $output, $servroot)
# _lib => DIR in %env runs the case under the library in DIR instead of
# the bundled one.
sub run_nested {
    my ($head, $data, %env) = @_;
    my $use_lib = delete $env{_lib} // $lib;
    $n++;
    my $file = "$tmp/case$n.t";
    my $servroot = $env{TEST_NGINX_SERVROOT} || "$tmp/servroot$n";
    # the cases below write "--- @ONLY@" and "--- @LAST@" so that no line
    # of this file is an ONLY or LAST left in by mistake
    $data =~ s/^--- \@(ONLY|LAST)\@$/--- $1/mg;
    open my $fh, '>', $file or die $!;
    print $fh $head, "\n__DATA__\n\n", $data;
    close $fh;
    local %ENV = %ENV;
    delete $ENV{$_} for grep { /^TEST_NGINX_/ } keys %ENV;
    $ENV{TEST_NGINX_SERVER_PORT} = free_port();
    $ENV{TEST_NGINX_SERVROOT} = $servroot;
    $ENV{TEST_NGINX_NO_SHUFFLE} = 1;
    $ENV{TEST_NGINX_NO_LOCK} = 1;    # private port + servroot: no need to lock
    $ENV{TEST_NGINX_BINARY} = $ENV{HARNESS_META_NGINX} if $ENV{HARNESS_META_NGINX};
    $ENV{$_} = $env{$_} for keys %env;
    my $out = `'$^X' -I'$use_lib' '$file' 2>&1`;
    my $code = $? >> 8;
    return ($code, $out, $servroot);
}

my $HEAD = "use Test::Nginx::Socket 'no_plan';\nno_shuffle();\nrun_tests();";

# --------------------------------------------------------------------------
# 1. every asserting section must FAIL on a wrong expectation
my @fail_cases = (
    [ 'response_body', <<'T', qr/^not ok \d+ - TEST 1: t - response_body - response is expected/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body
goodbye
T
    [ 'error_code', <<'T', qr/^not ok \d+ - TEST 1: t - status code ok/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "hello\n"; }
--- request
GET /t
--- error_code: 404
T
    [ 'default status 200', <<'T', qr/^not ok \d+ - TEST 1: t - status code ok/m ],
=== TEST 1: t
--- config
    location = /t { return 403; }
--- request
GET /t
T
    [ 'error_code_like', <<'T', qr/^not ok \d+ - TEST 1: t - status code ok/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- error_code_like: ^5\d\d$
T
    [ 'response_headers value', <<'T', qr/^not ok \d+ - TEST 1: t - header X-Foo ok/m ],
=== TEST 1: t
--- config
    location = /t { add_header X-Foo bar; return 200 "x"; }
--- request
GET /t
--- response_headers
X-Foo: baz
T
    [ 'response_headers absent', <<'T', qr/^not ok \d+ - TEST 1: t - header X-Foo not present/m ],
=== TEST 1: t
--- config
    location = /t { add_header X-Foo bar; return 200 "x"; }
--- request
GET /t
--- response_headers
!X-Foo
T
    [ 'response_headers missing', <<'T', qr/^not ok \d+ - TEST 1: t - header X-Nope ok/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_headers
X-Nope: 1
T
    [ 'response_headers_like', <<'T', qr/^not ok \d+ - TEST 1: t - header X-Foo like ok/m ],
=== TEST 1: t
--- config
    location = /t { add_header X-Foo bar123; return 200 "x"; }
--- request
GET /t
--- response_headers_like
X-Foo: bar\d{4}
T
    [ 'raw_response_headers_like', <<'T', qr/^not ok \d+ - TEST 1: t - raw resp headers like/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- raw_response_headers_like: X-Nope: \d+\r\n
T
    [ 'response_body_like', <<'T', qr/^not ok \d+ - TEST 1: t - response_body_like - response is expected/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body_like: ^bye
T
    [ 'response_body_unlike', <<'T', qr/^not ok \d+ - TEST 1: t - response_body_unlike - response is expected/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body_unlike: hel+o
T
    [ 'response_body eval array', <<'T', qr/^not ok \d+ - TEST 1: t - response_body - response is expected \(repeated req 0, req 1\)/m ],
=== TEST 1: t
--- config
    location /t { return 200 "$uri\n"; }
--- request eval
["GET /t/a", "GET /t/b"]
--- response_body eval
["/t/a\n", "/t/WRONG\n"]
T
    [ 'error_log', <<'T', qr/^not ok \d+ - TEST 1: t - pattern "this is never logged" should match a line in error.log/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- error_log
this is never logged
T
    [ 'error_log eval qr', <<'T', qr/^not ok \d+ - TEST 1: t - pattern "\(\?\^:never\\d\+\)" should match/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- error_log eval
[qr/never\d+/]
T
    [ 'no_error_log', <<'T', qr/^not ok \d+ - TEST 1: t - pattern "\[error\]" should not match any line in error.log but matches line/m ],
=== TEST 1: t
--- config
--- request
GET /missing-file.html
--- error_code: 404
--- no_error_log
[error]
T
    [ 'grep_error_log_out', <<'T', qr/^not ok \d+ - TEST 1: t - grep_error_log_out \(req 0\)/m ],
=== TEST 1: t
--- config
--- request
GET /missing-file.html
--- error_code: 404
--- grep_error_log chop
No such file or directory
--- grep_error_log_out
something else
T
    [ 'shutdown_error_log', <<'T', qr/^not ok \d+ - TEST 1: t - pattern "never at shutdown" should match a line in shutdown error log/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- shutdown_error_log
never at shutdown
T
    [ 'timeout without abort', <<'T', qr/^not ok \d+ - ERROR: client socket timed out - TEST 1: t/m ],
=== TEST 1: t
--- config
    location = /slow { limit_rate 1; return 200 "0123456789012345678901234567890123456789"; }
--- request
GET /slow
--- timeout: 0.2
--- ignore_response
T
    [ 'unsupported section', <<'T', qr/^not ok \d+ - TEST 1: t - unsupported section: response_bdy/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_bdy
x
T
    [ 'unsupported filter', <<'T', qr/^not ok \d+ - TEST 1: t - bad test block: unsupported filter 'evl'/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request evl
"GET /t"
T
    [ 'eval error', <<'T', qr/^not ok \d+ - TEST 1: t - bad test block: eval filter failed in section 'response_body'/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_body eval
die "boom\n"
T
    [ 'undefined TEST_NGINX_ variable', <<'T', qr/^not ok \d+ - TEST 1: t - cannot build nginx.conf: No environment \$TEST_NGINX_UNDEFINED_THING defined/m ],
=== TEST 1: t
--- config
    location = /t { return 200 "$TEST_NGINX_UNDEFINED_THING"; }
--- request
GET /t
T
);

for my $c (@fail_cases) {
    my ($what, $data, $re) = @$c;
    my ($code, $out) = run_nested($HEAD, $data);
    ok($code != 0, "wrong '$what' expectation makes the nested test fail (exit $code)")
        or diag($out);
    like($out, $re, "'$what': the expected failing assertion is reported") or diag($out);
}

# --------------------------------------------------------------------------
# 2. nginx that cannot start: the block fails and error.log is shown
{
    my ($code, $out) = run_nested($HEAD, <<'T');
=== TEST 1: bad config
--- config
    location = /t { no_such_directive_here on; }
--- request
GET /t
--- response_body
x
T
    ok($code != 0, 'a config nginx rejects fails the block');
    like($out, qr/TEST 1: bad config - nginx failed to start/, '... says nginx failed to start');
    like($out, qr/unknown directive "no_such_directive_here"/, '... and shows the error.log lines');
    like($out, qr/^not ok \d+ - TEST 1: bad config - status code ok/m, '... and the assertions fail');
}

# 3. nginx dying during a block is detected
{
    my ($code, $out) = run_nested($HEAD, <<'T');
=== TEST 1: killed
--- config
    location = /t { return 200 "x"; }
--- init
open my $fh, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid" or die $!;
my $pid = <$fh>; chomp $pid; kill 'KILL', $pid; select undef, undef, undef, 0.2;
--- request
GET /t
--- ignore_response
T
    ok($code != 0, 'nginx killed during the block fails it');
    like($out, qr/^not ok \d+ - TEST 1: killed - nginx died during the test/m, '... with a clear message');
}

# 4. [alert] lines: warning by default, failure with TEST_NGINX_FAIL_ON_ALERT=1
{
    my $alert_head = "use Test::Nginx::Socket 'no_plan';\nno_shuffle();\nworker_connections(3);\nrun_tests();";
    my $data = <<'T';
=== TEST 1: too few worker_connections
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_7;
        location / { return 200 "backend\n"; }
    }
--- config
    location = /t { proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_7/; }
--- request
GET /t
--- error_code_like: .*
T
    my ($code, $out) = run_nested($alert_head, $data);
    is($code, 0, 'an unexpected [alert] does not fail by default') or diag($out);
    like($out, qr/^WARNING: TEST 1: too few worker_connections - .*\[alert\].*worker_connections are not enough/m,
         '... but a warning is printed');
    ($code, $out) = run_nested($alert_head, $data, TEST_NGINX_FAIL_ON_ALERT => 1);
    ok($code != 0, 'with TEST_NGINX_FAIL_ON_ALERT=1 it fails') or diag($out);
    like($out, qr/^not ok \d+ - TEST 1: too few worker_connections - no unexpected \[alert\]/m, '... with a clear message');
    ($code, $out) = run_nested($alert_head, $data . "--- error_log\nworker_connections are not enough\n",
                               TEST_NGINX_FAIL_ON_ALERT => 1);
    is($code, 0, 'an [alert] mentioned in --- error_log is expected, not a failure') or diag($out);
}

# 5. ONLY / LAST / SKIP
{
    my ($code, $out) = run_nested($HEAD, <<'T');
=== TEST 1: would fail
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_body
not x

=== TEST 2: only this one
--- @ONLY@
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_body chomp
x
T
    is($code, 0, '--- ONLY runs only that block') or diag($out);
    like($out, qr/ONLY/, '... and warns about it');
    unlike($out, qr/TEST 1/, '... TEST 1 did not run');

    ($code, $out) = run_nested($HEAD, <<'T');
=== TEST 1: runs
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- @LAST@

=== TEST 2: after LAST
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_body
not x

=== TEST 3: skipped
--- SKIP
--- request
GET /t
--- error_code: 999
T
    is($code, 0, '--- LAST stops after that block') or diag($out);
    like($out, qr/^1\.\.1$/m, '... exactly one assertion ran');
}

# 6. done_testing after run_tests with extra assertions; cleanup handlers
{
    my $marker = "$tmp/cleanup-ran";
    my ($code, $out) = run_nested(<<"H", <<'T');
use Test::Nginx::Socket;
no_shuffle();
add_cleanup_handler(sub { open my \$fh, '>', '$marker' or die; close \$fh; });
run_tests();
is(blocks() + 0, 1, 'extra assertion after run_tests');
Test::More::done_testing();
H
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_body chomp
x
T
    is($code, 0, 'Test::More::done_testing() after run_tests() works') or diag($out);
    like($out, qr/^ok 3 - extra assertion after run_tests$/m, '... the extra assertion ran');
    like($out, qr/^1\.\.3$/m, '... and the plan is printed at the end');
    ok(-e $marker, 'add_cleanup_handler handlers are run');
}

# 7. HUP mode: one master, reloaded between blocks, new config in effect
{
    my $data = '';
    for my $i (1 .. 3) {
        $data .= "=== TEST $i: block $i\n--- config\n"
               . "    location = /t { return 200 \"config $i\\n\"; }\n"
               . "--- request\nGET /t\n--- response_body\nconfig $i\n"
               . "--- no_error_log\n[emerg]\n\n";
    }
    my ($code, $out, $sr) = run_nested($HEAD, $data, TEST_NGINX_USE_HUP => 1);
    is($code, 0, 'HUP mode: every block sees its own config') or diag($out);
    open my $fh, '<', "$sr/logs/error.log" or die $!;
    my $log = do { local $/; <$fh> };
    my $hups = () = $log =~ /signal 1 \(SIGHUP\) received/g;
    is($hups, 2, 'HUP mode: nginx was reloaded (not restarted) between the 3 blocks');
    like($log, qr/master_process on|start worker process/, 'HUP mode: a master process ran');
}

# 8. left-over nginx (TEST_NGINX_NO_CLEAN) is killed by the next run
{
    my $sr = "$tmp/servroot-noclean";
    my $data = <<'T';
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
T
    my ($code, $out) = run_nested($HEAD, $data, TEST_NGINX_SERVROOT => $sr, TEST_NGINX_NO_CLEAN => 1);
    is($code, 0, 'TEST_NGINX_NO_CLEAN run passes') or diag($out);
    open my $fh, '<', "$sr/logs/nginx.pid" or die "no pid file: $!";
    chomp(my $pid = <$fh>);
    close $fh;
    ok(kill(0, $pid), "TEST_NGINX_NO_CLEAN leaves nginx $pid running");
    ($code, $out) = run_nested($HEAD, $data, TEST_NGINX_SERVROOT => $sr);
    is($code, 0, 'the next run in the same servroot passes') or diag($out);
    my $alive = kill(0, $pid) && do {
        open my $st, '<', "/proc/$pid/stat"; my $s = <$st> // ''; $s !~ /\) Z /;
    };
    ok(!$alive, 'and the left-over nginx is gone');

    # same again, but the pid file of the left-over nginx is lost
    ($code, $out) = run_nested($HEAD, $data, TEST_NGINX_SERVROOT => $sr, TEST_NGINX_NO_CLEAN => 1);
    open $fh, '<', "$sr/logs/nginx.pid" or die "no pid file: $!";
    chomp($pid = <$fh>);
    close $fh;
    unlink "$sr/logs/nginx.pid";
    ok(kill(0, $pid), "left-over nginx $pid running, its pid file removed");
    ($code, $out) = run_nested($HEAD, $data, TEST_NGINX_SERVROOT => $sr);
    is($code, 0, 'the next run still passes') or diag($out);
    like($out, qr/killing left-over nginx process $pid/, '... it found the left-over by its command line');
    $alive = kill(0, $pid) && do {
        open my $st, '<', "/proc/$pid/stat"; my $s = <$st> // ''; $s !~ /\) Z /;
    };
    ok(!$alive, '... and killed it');
}

# 9b. the genuine library's semantics.  Each case is run under the bundled
# harness; where the genuine library is on @INC (e.g. PERL5LIB=/tmp/tn/lib,
# or HARNESS_GENUINE_LIB=DIR) the cases marked "both" are run under it too
# and must get the same verdict, so that these tests describe the genuine
# behaviour and not only ours.
my ($genuine) = grep { defined && -f "$_/Test/Nginx/Socket.pm" && !-f "$_/Test/Nginx/Harness/Block.pm" }
                ($ENV{HARNESS_GENUINE_LIB}, grep { !ref } @INC);
{
    my $ok_conf = "--- config\n    location = /ok { return 200 \"ok\\n\"; }\n";
    # [ name, head, data, passes?, both?, [ regexes on the bundled output ] ]
    my @cases = (
        [ 'a forbidden line logged by the 2nd request of an array fails the block',
          $HEAD, <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /ok", "GET /missing-a.html"]
--- error_code eval
[200, 404]
--- no_error_log
[error]
T
          [ qr/^ok \d+ - TEST 1: t - pattern "\[error\]" does not match a line in error.log \(req 0\)$/m,
            qr/^not ok \d+ - TEST 1: t - pattern "\[error\]" should not match any line in error.log but matches line ".*missing-a\.html/m ] ],
        [ '... and passes when no request logs it', $HEAD, <<"T", 1, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /ok", "GET /ok"]
--- error_code eval
[200, 200]
--- no_error_log
[error]
T
          [ qr/^1\.\.4$/m ] ],
        [ 'an error_log line of the 1st request only fails on the 2nd', $HEAD, <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /missing-a.html", "GET /ok"]
--- error_code eval
[404, 200]
--- error_log
No such file or directory
T
          [ qr/^ok \d+ - TEST 1: t - pattern "No such file or directory" matches a line in error.log \(req 0\)$/m,
            qr/^not ok \d+ - TEST 1: t - pattern "No such file or directory" should match a line in error.log \(req 0\)$/m ] ],
        [ 'an error_log line every request logs passes, one assertion per request', $HEAD, <<"T", 1, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /missing-a.html", "GET /missing-b.html"]
--- error_code eval
[404, 404]
--- error_log
No such file or directory
T
          [ qr/^1\.\.4$/m ] ],
        [ 'each request sees only its own part of the log', $HEAD, <<"T", 1, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /missing-a.html", "GET /missing-a.html"]
--- error_code eval
[404, 404]
--- grep_error_log eval
qr/\\/missing-a\\.html" failed/
--- grep_error_log_out
/missing-a.html" failed
T
          [ qr/^ok \d+ - TEST 1: t - grep_error_log_out \(req 0\)$/m, qr/^1\.\.4$/m ] ],
        [ 'a grep_error_log_out array is indexed per repeat', "use Test::Nginx::Socket 'no_plan';\nrepeat_each(2);\nno_shuffle();\nrun_tests();", <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request
GET /missing-a.html
--- error_code: 404
--- grep_error_log eval
qr/\\/missing-a\\.html" failed/
--- grep_error_log_out eval
["/missing-a.html\\" failed\\n", "wrong\\n"]
T
          [ qr/^ok \d+ - TEST 1: t - grep_error_log_out \(req 0\)$/m,
            qr/^not ok \d+ - TEST 1: t - grep_error_log_out \(req 1\)$/m ] ],
        [ 'response checks of a request array are matched per request', $HEAD, <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /ok", "GET /missing-a.html"]
--- error_code eval
[404, 200]
T
          [ qr/^not ok 1 - TEST 1: t - status code ok$/m, qr/^not ok 2 - TEST 1: t - status code ok$/m ] ],
        [ 'one expected value for several requests fails', $HEAD, <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request eval
["GET /ok", "GET /ok"]
--- error_code: 200
T
          [ qr/^not ok \d+ - TEST 1: t - --- error_code needs one value per request \(an array of 2\)/m ] ],
        [ 'done_testing() is not exported', "use Test::Nginx::Socket;\nno_shuffle();\nrun_tests();\ndone_testing();", <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request
GET /ok
T
          [ qr/Undefined subroutine &main::done_testing/ ] ],
        [ 'section code runs under strict outside main', "use Test::Nginx::Socket 'no_plan';\nour \$Greeting = 'ok';\nno_shuffle();\nrun_tests();", <<"T", 0, 1,
=== TEST 1: t
$ok_conf--- request
GET /ok
--- response_body eval
"\$Greeting\\n"
T
          [ qr/^not ok \d+ - TEST 1: t - bad test block: eval filter failed in section 'response_body': Global symbol "\$Greeting"/m ] ],
        [ '... main:: names work', "use Test::Nginx::Socket 'no_plan';\nour \$Greeting = 'ok';\nno_shuffle();\nrun_tests();", <<"T", 1, 1,
=== TEST 1: t
$ok_conf--- request
GET /ok
--- response_body eval
"\$::Greeting\\n"
T
          [ qr/^1\.\.2$/m ] ],
        [ '$TEST_NGINX_ variables are not expanded in --- request', $HEAD, <<'T', 1, 1,
=== TEST 1: t
--- config
    location = /t { return 200 "$arg_p\n"; }
--- request
GET /t?p=$TEST_NGINX_SERVER_PORT
--- response_body_like: ^\$TEST_NGINX_SERVER_PORT$
T
          [ qr/^1\.\.2$/m ] ],
        [ 'GET / finds html/index.html', $HEAD, <<'T', 1, 1,
=== TEST 1: t
--- config
--- request
GET /
--- response_body_like: It works!
T
          [ qr/^1\.\.2$/m ] ],
        [ 'a HEAD inside a pipeline fails', $HEAD, <<'T', 0, 1,
=== TEST 1: t
--- config
    location /p { return 200 "$request_method $uri\n"; }
--- pipelined_requests eval
["GET /p1", "HEAD /p2", "GET /p3"]
--- response_body eval
["GET /p1\n", "", "GET /p3\n"]
T
          [ qr/^not ok \d+ - TEST 1: t - bad request spec: a HEAD request in --- pipelined_requests must be the last one/m ] ],
        [ 'a skip_nginx version the genuine library rejects fails', $HEAD, <<"T", 0, 1,
=== TEST 1: t
--- skip_nginx: 1: < 1.21
$ok_conf--- request
GET /ok
T
          [ qr/^not ok \d+ - TEST 1: t - bad --- skip_nginx value/m ] ],
        [ 'a must_die block needs no request; one assertion per repeat',
          "use Test::Nginx::Socket 'no_plan';\nrepeat_each(2);\nno_shuffle();\nrun_tests();", <<'T', 1, 1,
=== TEST 1: t
--- config
    location = /t { no_such_directive_here on; }
--- must_die
--- error_log
unknown directive "no_such_directive_here"
T
          [ qr/^ok 1 - TEST 1: t - die as expected$/m, qr/^ok 3 - TEST 1: t - die as expected$/m,
            qr/^1\.\.4$/m ] ],
        [ 'no --- config fails', $HEAD, <<'T', 0, 1,
=== TEST 1: t
--- request
GET /
T
          [ qr/^not ok \d+ - TEST 1: t - no --- config section/m ] ],
        # stricter than the genuine library: it silently checks only one
        # section of each pair, ignores an array's extra values and does not
        # know --- ignore_response_body
        [ 'response_body with response_body_like fails', $HEAD, <<"T", 0, 0,
=== TEST 1: t
$ok_conf--- request
GET /ok
--- response_body
ok
--- response_body_like: nope
T
          [ qr/^not ok \d+ - TEST 1: t - --- response_body and --- response_body_like together: the genuine library checks only --- response_body/m ] ],
        [ 'error_code with error_code_like fails', $HEAD, <<"T", 0, 0,
=== TEST 1: t
$ok_conf--- request
GET /ok
--- error_code: 200
--- error_code_like: ^5
T
          [ qr/^not ok \d+ - TEST 1: t - --- error_code_like and --- error_code together/m ] ],
        [ 'an array with more values than requests fails', $HEAD, <<"T", 0, 0,
=== TEST 1: t
$ok_conf--- request eval
["GET /ok", "GET /ok"]
--- error_code eval
[200, 200, 404]
T
          [ qr/^not ok \d+ - TEST 1: t - --- error_code has 3 values for 2 requests/m ] ],
        [ 'ignore_response_body is not a section', $HEAD, <<"T", 0, 0,
=== TEST 1: t
$ok_conf--- request
GET /ok
--- ignore_response_body
--- response_body
wrong
T
          [ qr/^not ok \d+ - TEST 1: t - unsupported section: ignore_response_body/m ] ],
    );
    for my $c (@cases) {
        my ($what, $head, $data, $passes, $both, $res) = @$c;
        my ($code, $out) = run_nested($head, $data);
        if ($passes) {
            is($code, 0, "bundled: $what") or diag($out);
        } else {
            ok($code != 0, "bundled: $what (exit $code)") or diag($out);
        }
        like($out, $_, "bundled: $what: $_") or diag($out) for @$res;
        SKIP: {
            skip "the genuine Test::Nginx is not on \@INC (PERL5LIB or HARNESS_GENUINE_LIB)", 1
                unless $genuine;
            skip "bundled-only rule", 1 unless $both;
            my ($gcode, $gout) = run_nested($head, $data, _lib => $genuine,
                                            TEST_NGINX_BINARY => $ENV{HARNESS_META_NGINX} || 'nginx');
            is(!!($gcode == 0), !!$passes, "genuine ($genuine) agrees: $what")
                or diag($gout);
        }
    }
}

# 9. valgrind mode reports definite leaks as a failed test
SKIP: {
    skip 'valgrind not installed', 3 unless grep { -x "$_/valgrind" } split /:/, $ENV{PATH};
    skip 'HARNESS_META_SKIP_VALGRIND set', 3 if $ENV{HARNESS_META_SKIP_VALGRIND};
    my $data = <<'T';
=== TEST 1: t
--- config
    location = /t { return 200 "x"; }
--- request
GET /t
--- response_body chomp
x
T
    my ($code, $out) = run_nested($HEAD, $data, TEST_NGINX_USE_VALGRIND => 1);
    is($code, 0, 'valgrind mode: a clean block passes') or diag($out);
    # without the built-in suppressions the well-known nginx core leak in
    # ngx_set_environment() shows up as a definite leak
    ($code, $out) = run_nested($HEAD, $data, TEST_NGINX_USE_VALGRIND => 1,
                               TEST_NGINX_VALGRIND_NO_BUILTIN_SUPPRESS => 1);
    ok($code != 0, 'valgrind mode: a definite leak fails the block') or diag($out);
    like($out, qr/^not ok \d+ - TEST 1: t - valgrind reported .*definitely lost/m, '... with a clear message');
}

done_testing();
