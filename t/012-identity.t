# Identity: agencies mapped by their exact subject, and a client
# verification that counts only in the server block that made it (a
# handshake without SNI is made with the default server's CA and CRL).

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

my $pki = juki_env('TEST_NGINX_PKI');
my $key = juki_env('TEST_NGINX_AUDIT_KEY');
my $redis_port = juki_env('TEST_NGINX_REDIS_PORT');
my $be = $ENV{TEST_NGINX_BACKEND_PORT};
my $timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '1s';

# Two servers on one address: a lenient default server (optional client
# certificates, its own CA, no CRL) and the juki server (its name, the
# registry's CA and CRL).  The test client reaches the address by IP, so
# it sends SNI only when a block asks for it.
sub identity_config {
    my %o = @_;
    my $policy = JukiTest::policy(%o);
    my $lenient_ca = $o{lenient_ca} // "$pki/ca.pem";
    my $p = '$TEST_NGINX_RAND_PORT_1';
    # the gateway's credential of the test Redis's ACL
    my $auth = 'user=juki-gw password=' . JukiTest::secret('juki-gw');
    $policy =~ s/subject "([^"]*)"/subject "\L$1\E"/g if $o{lower_subjects};

    return <<"EOF_H";
    juki_redis 127.0.0.1:$redis_port timeout=$timeout $auth;
    juki_audit_key $key;
    juki_node test-node;
$policy
    map \$http_x_test_cert \$test_cert_file {
        default       $pki/national;
        municipality  $pki/municipality;
        revoked       $pki/revoked;
        forged        $pki/forged;
        unmapped      $pki/unmapped;
    }

    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;

    server {
        listen 127.0.0.1:$p ssl default_server;
        server_name default.test;
        ssl_verify_client optional;
        ssl_client_certificate $lenient_ca;
        location / {
            return 200 "default server\\n";
        }
    }

    server {
        listen 127.0.0.1:$p ssl;
        server_name gw.test;
        ssl_verify_client on;
        ssl_client_certificate $pki/ca.pem;
        ssl_crl $pki/crl.pem;
        location / {
            juki on;
            juki_subject \$arg_code;
            proxy_pass http://127.0.0.1:$be;
        }
    }

    server {
        listen 127.0.0.1:$be;
        access_log logs/backend.log;
        location / {
            default_type application/json;
            return 200 '{"agency":"\$http_juki_agency","uri":"\$request_uri"}\\n';
        }
    }
EOF_H
}

sub identity_client {
    my $sni = shift;
    my $p = '$TEST_NGINX_RAND_PORT_1';
    my $sni_lines = $sni ? "proxy_ssl_server_name on;\n"
                           . "        proxy_ssl_name gw.test;\n" : '';
    return <<"EOF_C";
    location / {
        proxy_pass https://127.0.0.1:$p;
        # a static upstream keeps its saved session past exit: valgrind
        # calls that a leak
        proxy_ssl_session_reuse off;
        $sni_lines
        proxy_ssl_certificate \$test_cert_file.pem;
        proxy_ssl_certificate_key \$test_cert_file.key;
        proxy_set_header X-Test-Cert "";
        proxy_set_header Host gw.test;
    }
EOF_C
}

# "sni=1 by=subject": the options of a block's http_config and config
sub identity {
    my %o = map { split /=/, $_, 2 } split ' ', shift // '';
    $o{lenient_ca} = "$pki/$o{lenient_ca}" if $o{lenient_ca};
    return (identity_config(%o), identity_client($o{sni}));
}

add_block_preprocessor(sub {
    my $block = shift;
    my ($http, $config) = identity($block->identity);
    $block->set_value('http_config', $http)
        unless defined $block->http_config;
    $block->set_value('config', $config) unless defined $block->config;
});

redis_flush();

run_tests();

my @records = grep { !exists $_->{phase} } audit_records();
my %decisions;
$decisions{$_->{decision}}++ for @records;

is($decisions{'allow'}, 4, 'allowed requests audited');
is(scalar(grep { $_->{decision} eq 'deny:unverified_certificate'
                 && $_->{uri} ne '' } @records), 3,
   'certificates verified by another server block refused and audited');
is(scalar(grep { $_->{decision} eq 'deny:unverified_certificate'
                 && $_->{uri} eq '' } @records), 2,
   'and those NGINX refused itself (TEST 4, 8), from the log phase');
is($decisions{'deny:unknown_agency'}, 2,
   'unmapped certificates and case-differing subjects audited');
ok((grep { $_->{agency} eq 'shibuya-city' && $_->{decision} eq 'allow' }
    @records), 'the agency mapped by subject alone is named in its record');
ok(!(grep { $_->{agency} eq 'shibuya-city'
            && $_->{decision} ne 'allow' } @records),
   'no record credits the forged subject to the agency');

__DATA__

=== TEST 1: SNI: an agency mapped by its exact subject alone is recognised
--- identity: sni=1
--- request
GET /v1/residents/?code=12345678901
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: school.enrolment
Juki-Operator: clerk-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"shibuya-city","uri":"/v1/residents/\?code=12345678901"\}$
--- no_error_log
[error]
[alert]



=== TEST 2: SNI: every agency mapped by subject only
--- identity: sni=1 by=subject
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","uri":"/v1/residents/\?code=12345678901"\}$



=== TEST 3: SNI: a configured subject is matched exactly, not case-folded
--- identity: sni=1 by=subject lower_subjects=1
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unknown_agency","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 4: SNI: a revoked certificate is refused by NGINX itself
--- identity: sni=1
--- request
GET /v1/residents/?code=12345678901
--- more_headers
X-Test-Cert: revoked
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: certificate



=== TEST 5: no SNI: a revoked certificate the default server accepted is refused
--- request
GET /v1/residents/?code=12345678901
--- more_headers
X-Test-Cert: revoked
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 6: no SNI: even a valid agency certificate counts only where verified
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 7: no SNI: an agency's subject from a CA only the default server trusts
--- identity: lenient_ca=untrusted-ca.pem
--- request
GET /v1/residents/?code=12345678901
--- more_headers
X-Test-Cert: forged
Juki-Purpose: school.enrolment
Juki-Operator: clerk-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 8: SNI: the same forged subject is refused by NGINX itself
--- identity: sni=1 lenient_ca=untrusted-ca.pem
--- request
GET /v1/residents/?code=12345678901
--- more_headers
X-Test-Cert: forged
Juki-Purpose: school.enrolment
Juki-Operator: clerk-1
--- error_code: 400



=== TEST 9: no SNI, Host of the default server: not a juki location at all
--- config
    location / {
        proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        proxy_ssl_session_reuse off;
        proxy_ssl_certificate $test_cert_file.pem;
        proxy_ssl_certificate_key $test_cert_file.key;
        proxy_set_header Host default.test;
    }
--- request
GET /v1/residents/
--- error_code: 200
--- response_body
default server



=== TEST 10: SNI: the agency mapped by fingerprint and subject still passes
--- identity: sni=1
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","uri":"/v1/residents/\?code=12345678901"\}$



=== TEST 11: SNI: a trusted certificate mapped to no agency
--- identity: sni=1
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: unmapped
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unknown_agency","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 12: SNI: allowed requests reach the backend with the agency
--- identity: sni=1 by=subject
--- request
GET /v1/residents/?code=23456789012
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: health.insurance
Juki-Operator: clerk-2
--- error_code: 200
--- response_body_like chomp
^\{"agency":"shibuya-city","uri":"/v1/residents/\?code=23456789012"\}$
