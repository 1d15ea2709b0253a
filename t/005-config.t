# nginx -t refuses every configuration mistake of SPEC section 2 with the
# file and line of the mistake.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();

# key files for the audit key checks, next to the test Redis's data
my $dir = juki_env('TEST_NGINX_REDIS_DIR');

sub key_file {
    my ($name, $bytes, $mode) = @_;
    my $path = "$dir/$name";
    open(my $fh, '>:raw', $path) or die "$path: $!";
    print $fh 'k' x $bytes;
    close $fh;
    chmod $mode, $path;
    return $path;
}

$ENV{TEST_NGINX_SHORT_KEY} = key_file('short.key', 31, 0600);
$ENV{TEST_NGINX_OPEN_KEY} = key_file('open.key', 64, 0644);
$ENV{TEST_NGINX_GROUP_KEY} = key_file('group.key', 64, 0640);
$ENV{TEST_NGINX_GOOD_KEY} = key_file('good.key', 64, 0600);
$ENV{TEST_NGINX_REDIS} = '127.0.0.1:' . juki_env('TEST_NGINX_REDIS_PORT');

our $Purpose = <<'EOF_P';
    juki_purpose pension.benefit {
        statute "Annex 1, item 1";
        methods GET;
        uri /v1/residents/;
        resident_code allowed;
    }
    juki_purpose identity.verification {
        statute "Annex 2";
        methods GET;
        uri /v1/verify;
        resident_code forbidden;
    }
EOF_P

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config', "location = /t { return 204; }\n")
        unless defined $block->config;
    $block->set_value('request', "GET /t\n") unless defined $block->request;
});

run_tests();

__DATA__

=== TEST 1: a sound configuration starts
--- http_config eval
"juki_redis \$TEST_NGINX_REDIS;\njuki_audit_key \$TEST_NGINX_GOOD_KEY;\n"
. $::Purpose . <<'EOF';
    juki_agency pension-service {
        kind national;
        certificate_sha256 3F:A1:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD;
        certificate_sha256 3fa1001122334455667788aabbccddeeff00112233445566778899aabbccddee;
        subject "CN=pension-service,O=Japan Pension Service,C=JP";
        purposes pension.benefit;
        rate 200r/s burst=400;
    }
    juki_anomaly distinct_subjects=100 window=1h;
EOF
--- config
location = /t { juki on; return 204; }
--- error_code: 204



=== TEST 2: an agency naming an unknown purpose
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency pension-service {
        kind national;
        subject "CN=a";
        purposes pension.benefit marketing.campaign;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*agency "pension-service" names unknown purpose "marketing\.campaign" in \S+nginx\.conf:\d+/



=== TEST 3: one fingerprint claimed by two agencies
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency agency-one {
        kind national;
        certificate_sha256 3fa1001122334455667788aabbccddeeff00112233445566778899aabbccddee;
        purposes pension.benefit;
    }
    juki_agency agency-two {
        kind municipality;
        certificate_sha256 3F:A1:00:11:22:33:44:55:66:77:88:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE;
        purposes pension.benefit;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*certificate_sha256 "3F:A1[^"]*" of juki_agency "agency-two" is already claimed by juki_agency "agency-one" in \S+nginx\.conf:\d+/



=== TEST 4: one subject claimed by two agencies
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency agency-one {
        kind national;
        subject "CN=shared,O=Registry,C=JP";
        purposes pension.benefit;
    }
    juki_agency agency-two {
        kind national;
        subject "CN=shared,O=Registry,C=JP";
        purposes pension.benefit;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*subject "CN=shared,O=Registry,C=JP" of juki_agency "agency-two" is already claimed by juki_agency "agency-one" in \S+nginx\.conf:\d+/



=== TEST 5: a private agency given a purpose that allows the resident code
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency example-bank {
        kind private;
        subject "CN=bank";
        purposes identity.verification pension.benefit;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*private agency "example-bank" cannot be granted purpose "pension\.benefit" with "resident_code allowed" in \S+nginx\.conf:\d+/



=== TEST 6: a malformed fingerprint
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency agency-one {
        kind national;
        certificate_sha256 3F:A1:00:11;
        purposes pension.benefit;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid certificate_sha256 "3F:A1:00:11" in juki_agency "agency-one": 32 hex bytes expected in \S+nginx\.conf:\d+/



=== TEST 7: a fingerprint with a non-hex digit
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency agency-one {
        kind national;
        certificate_sha256 3fa1001122334455667788aabbccddeeff00112233445566778899aabbccddeg;
        purposes pension.benefit;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid certificate_sha256 .* in \S+nginx\.conf:\d+/



=== TEST 8: a malformed rate
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency agency-one {
        kind national;
        subject "CN=a";
        purposes pension.benefit;
        rate 50r/h burst=10;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid rate "50r\/h", use for example "50r\/s" or "10r\/m" in \S+nginx\.conf:\d+/



=== TEST 9: a malformed burst
--- http_config eval
$::Purpose =~ s/resident_code allowed;/resident_code allowed;\n        rate 5r\/s burst=-1;/r
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "burst=-1" in "rate" in \S+nginx\.conf:\d+/



=== TEST 10: juki on without juki_redis
--- http_config
    juki_audit_key $TEST_NGINX_GOOD_KEY;
--- config
location = /t { juki on; return 204; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki on" requires "juki_redis" in \S+nginx\.conf:\d+/



=== TEST 11: juki on without juki_audit_key
--- http_config
    juki_redis $TEST_NGINX_REDIS;
--- config
location = /t { juki on; return 204; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki on" requires "juki_audit_key" in \S+nginx\.conf:\d+/



=== TEST 12: a missing audit key
--- http_config
    juki_audit_key /nonexistent/juki/audit.key;
--- must_die
--- error_log eval
qr/\[emerg\] .*cannot open audit key "\/nonexistent\/juki\/audit\.key" .*in \S+nginx\.conf:\d+/



=== TEST 13: a short audit key
--- http_config
    juki_audit_key $TEST_NGINX_SHORT_KEY;
--- must_die
--- error_log eval
qr/\[emerg\] .*audit key "[^"]+short\.key" has 31 bytes, it must have 32 to 4096 in \S+nginx\.conf:\d+/



=== TEST 14: a world-readable audit key
--- http_config
    juki_audit_key $TEST_NGINX_OPEN_KEY;
--- must_die
--- error_log eval
qr/\[emerg\] .*audit key "[^"]+open\.key" must not be accessible by group or others \(chmod 600\) in \S+nginx\.conf:\d+/



=== TEST 15: a group-readable audit key
--- http_config
    juki_audit_key $TEST_NGINX_GROUP_KEY;
--- must_die
--- error_log eval
qr/\[emerg\] .*group\.key" must not be accessible by group or others/



=== TEST 16: satisfy any would let another module overrule a denial
--- http_config
    juki_redis $TEST_NGINX_REDIS;
    juki_audit_key $TEST_NGINX_GOOD_KEY;
--- config
location = /t { juki on; satisfy any; allow 127.0.0.1; return 204; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki on" cannot be used with "satisfy any" in \S+nginx\.conf:\d+/



=== TEST 17: an unknown kind
--- http_config eval
$::Purpose . <<'EOF';
    juki_agency agency-one {
        kind company;
        subject "CN=a";
        purposes pension.benefit;
    }
EOF
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid kind "company" in juki_agency "agency-one".* in \S+nginx\.conf:\d+/



=== TEST 18: an unknown directive inside juki_purpose
--- http_config
    juki_purpose p.one {
        statute "x";
        methods GET;
        uri /;
        allow_everything on;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown directive "allow_everything" in juki_purpose in \S+nginx\.conf:\d+/



=== TEST 19: a purpose without its scope
--- http_config
    juki_purpose p.one {
        statute "x";
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*juki_purpose "p\.one" needs "methods" and "uri" in \S+nginx\.conf:\d+/



=== TEST 20: a malformed anomaly rule
--- http_config
    juki_anomaly distinct_subjects=0 window=1h;
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid or repeated parameter "distinct_subjects=0" in "juki_anomaly" in \S+nginx\.conf:\d+/



=== TEST 21: a denials rule cannot stop an operator
--- http_config
    juki_anomaly denials=10 window=10m action=stop_operator;
--- must_die
--- error_log eval
qr/\[emerg\] .*"action=stop_operator" does not fit a "denials" rule/



=== TEST 22: an unknown juki_redis parameter
--- http_config
    juki_redis 127.0.0.1:6379 timeout=50ms tls=on;
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "tls=" in "juki_redis" in \S+nginx\.conf:\d+/



=== TEST 23: juki_redis sentinel= is refused by name, not resolved as a host
--- http_config
    juki_redis sentinel=127.0.0.1:26379 master=juki timeout=50ms;
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki_redis" "sentinel=127\.0\.0\.1:26379": Redis Sentinel and Cluster are not supported yet, give one address in \S+nginx\.conf:\d+/



=== TEST 24: juki_redis cluster= likewise
--- http_config
    juki_redis cluster=127.0.0.1:7000,127.0.0.1:7001;
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki_redis" "cluster=127\.0\.0\.1:7000,127\.0\.0\.1:7001": Redis Sentinel and Cluster are not supported yet/
