# Self-test of the bundled Test::Nginx::Socket harness (t/lib): master
# process with several workers, no_root_location, log_level(), the
# generated nginx.conf layout, and extra Test::More assertions followed by
# Test::More::done_testing() after run_tests() (the genuine library does
# not export done_testing, so neither does the bundled one).  Stock nginx
# modules only.  Loads the bundled harness by path whatever PERL5LIB says.
use FindBin ();
use lib "$FindBin::Bin/../lib";
use Test::Nginx::Socket;

BEGIN {
    $Test::Nginx::Socket::IsBundledHarness
        or die "t/harness/03-master.t: the bundled harness was not loaded "
             . "from $FindBin::Bin/../lib\n";
}

master_on();
workers(2);
worker_connections(128);
log_level('info');
no_root_location();
no_long_string();
no_diff();
env_to_nginx('HARNESS_MASTER_TEST=1');
no_shuffle();
run_tests();

# after run_tests(): the last block's generated nginx.conf is still there
my $conf_file = "$Test::Nginx::Util::ServRoot/conf/nginx.conf";
ok(open(my $fh, '<', $conf_file), "generated $conf_file exists");
my $conf = do { local $/; <$fh> };
if ($ENV{TEST_NGINX_USE_VALGRIND}) {
    like($conf, qr/^master_process off;$/m, 'valgrind mode forces master_process off');
} else {
    like($conf, qr/^master_process on;$/m, 'master_on() is honoured');
}
like($conf, qr/^worker_processes\s+2;$/m, 'workers(2) is honoured');
like($conf, qr/^\s*worker_connections\s+128;$/m, 'worker_connections(128) is honoured');
like($conf, qr/^error_log \S+\/logs\/error\.log info;$/m, "log_level('info') is honoured");
like($conf, qr/^env HARNESS_MASTER_TEST=1;$/m, 'env_to_nginx() adds an env line');
like($conf, qr/^http \{.*^\s+server \{.*^\s+listen\s+\d+;.*^\s+server_name\s+'?localhost'?;/ms,
     'default server inside http {}');
like($conf, qr/^events \{/m, 'events block');
Test::More::done_testing();

__DATA__

=== TEST 1: both workers answer, own root location
--- config
    location / {
        return 200 "pid ok\n";
    }
--- request eval
["GET /", "GET /x", "GET /y", "GET /z"]
--- response_body eval
["pid ok\n", "pid ok\n", "pid ok\n", "pid ok\n"]
--- no_error_log
[debug]
[error]



=== TEST 2: log_level(info) filters out debug lines
--- config
    location / {
        return 404;
    }
--- request
GET /nothing
--- error_code: 404
--- no_error_log
[debug]
