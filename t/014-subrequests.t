# A request the module decided reaches a backend once: "post_action" is
# refused by nginx -t in juki locations, and background subrequests
# (mirror, a cache's background update) of a decided request are refused.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

$ENV{TEST_NGINX_REDIS} = '127.0.0.1:' . juki_env('TEST_NGINX_REDIS_PORT');
$ENV{TEST_NGINX_KEY} = juki_env('TEST_NGINX_AUDIT_KEY');

# the mirror's target: a location of the gateway server that proxies to
# the backend, so a copy that got through would be a second backend hit
our $Mirror = <<'EOF_M';
    location = /copy {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/mirrored;
    }
EOF_M

sub mirror_config {
    my $text = http_config(location => 'mirror /copy;');
    $text =~ s{(        location / \{\n            juki on;)}{$::Mirror$1}
        or die "mirror_config: no gateway location\n";
    return $text;
}

redis_flush();

run_tests();

my $log = ($ENV{TEST_NGINX_SERVROOT} // 't/servroot') . '/logs/backend.log';
open(my $fh, '<', $log) or die "$log: $!";
my @hits = <$fh>;
close $fh;
is(scalar(grep { m{/mirrored} } @hits), 0, 'the mirror copy reached no backend');
is(scalar(grep { m{/v1/residents/} } @hits), 1,
   'the allowed request reached the backend once');

__DATA__

=== TEST 1: post_action in a juki location
--- http_config
    juki_redis $TEST_NGINX_REDIS;
    juki_audit_key $TEST_NGINX_KEY;
--- config
location /v1/ { juki on; post_action /again; proxy_pass http://127.0.0.1:1; }
location /again { proxy_pass http://127.0.0.1:1; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki on" cannot be used with "post_action" in \S+nginx\.conf:\d+/



=== TEST 2: post_action inherited from the server level
--- http_config
    juki_redis $TEST_NGINX_REDIS;
    juki_audit_key $TEST_NGINX_KEY;
--- config
post_action /again;
location /v1/ { juki on; proxy_pass http://127.0.0.1:1; }
location /again { proxy_pass http://127.0.0.1:1; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki on" cannot be used with "post_action" in \S+nginx\.conf:\d+/



=== TEST 3: a mirror of an allowed request never reaches a backend
--- http_config eval: main::mirror_config()
--- config eval: main::client_config()
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service",.*"uri":"/v1/residents/\?code=12345678901"\}$
--- wait: 0.3
--- error_log eval
qr/juki: background subrequest to "\/copy" refused: it would repeat an audited request/
--- no_error_log
[alert]
[crit]
