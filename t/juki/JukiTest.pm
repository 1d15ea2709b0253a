package JukiTest;

# Shared set-up of the juki test suite: the gateway under test (mutual TLS,
# the module on), a backend that echoes what it received, and a client
# location through which the plain-HTTP test client reaches the gateway
# with the client certificate a test names.  Works with the genuine
# Test::Nginx::Socket and with the bundled harness alike.

use strict;
use warnings;

use Exporter 'import';
our @EXPORT = qw(juki_env redis redis_flush audit_records backend_hits
                 http_config client_config juki_defaults);

sub juki_env {
    my $name = shift;
    my $v = $ENV{$name};
    die "$name is not set: run the suite through `make test`\n"
        unless defined $v && length $v;
    return $v;
}

$ENV{TEST_NGINX_GW_PORT}      ||= 1985;
$ENV{TEST_NGINX_BACKEND_PORT} ||= 1986;
$ENV{TEST_NGINX_PLAIN_PORT}   ||= 1987;
$ENV{TEST_NGINX_OPT_PORT}     ||= 1988;
$ENV{TEST_NGINX_NOCA_PORT}    ||= 1989;

sub redis {
    my @args = @_;
    my $port = juki_env('TEST_NGINX_REDIS_PORT');
    open(my $fh, '-|', 'redis-cli', '-p', $port, '--no-raw', @args)
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}

sub redis_raw {
    my @args = @_;
    my $port = juki_env('TEST_NGINX_REDIS_PORT');
    open(my $fh, '-|', 'redis-cli', '-p', $port, '--raw', @args)
        or die "redis-cli: $!";
    my @lines = <$fh>;
    close $fh;
    chomp @lines;
    return @lines;
}

sub redis_flush { redis('FLUSHALL'); }

# every record of every audit stream: a list of hashes, "_stream" and "_id"
# added, in stream order
sub audit_records {
    my @records;
    for my $key (sort grep { length } redis_raw('--scan', '--pattern',
                                                'juki:*:audit'))
    {
        my @l = redis_raw('XRANGE', $key, '-', '+');
        # --raw prints: entry id, then field and value lines
        my $i = 0;
        while ($i < @l) {
            my $id = $l[$i++];
            my %r = (_stream => $key, _id => $id);
            while ($i < @l && $l[$i] !~ /^\d+-\d+$/) {
                my $f = $l[$i++];
                my $v = $l[$i++];
                $r{$f} = $v;
            }
            push @records, \%r;
        }
    }
    return @records;
}

sub backend_hits {
    my $log = "t/servroot/logs/backend.log";
    return 0 unless -f $log;
    open(my $fh, '<', $log) or return 0;
    my @l = <$fh>;
    close $fh;
    return scalar @l;
}

# code => [statute, methods, uri prefixes, resident_code]
our %PURPOSES = (
    'pension.benefit' => ['Basic Resident Registration Act, Annex 1, item 1',
                          'GET', '/v1/residents/', 'allowed'],
    'health.insurance' => ['Basic Resident Registration Act, Annex 1, item 2',
                           'GET', '/v1/residents/', 'allowed'],
    'tax.assessment' => ['Basic Resident Registration Act, Annex 2, item 1',
                         'GET POST', '/v1/residents/ /v1/tax/', 'allowed'],
    'school.enrolment' => ['Basic Resident Registration Act, Annex 3, item 7',
                           'GET', '/v1/residents/', 'allowed'],
    'identity.verification' => ['Act on Prevention of Transfer of Criminal '
                                . 'Proceeds, art. 4', 'GET', '/v1/verify',
                                'forbidden'],
    'network.diagnostics' => ['Registry network operating rules, section 9',
                              'GET', '/v1/echo', 'forbidden'],
    'rate.probe' => ['Registry network operating rules, section 12',
                     'GET', '/v1/probe/', 'allowed'],
);

# name => [kind, certificate in t/pki.sh, purposes]
our %AGENCIES = (
    'pension-service' => ['national', 'national',
        [qw(pension.benefit health.insurance network.diagnostics
            rate.probe)]],
    'shibuya-city' => ['municipality', 'municipality',
        [qw(tax.assessment health.insurance school.enrolment
            network.diagnostics rate.probe)]],
    'example-bank' => ['private', 'private',
        [qw(identity.verification network.diagnostics)]],
);

sub fingerprints {
    my $pki = juki_env('TEST_NGINX_PKI');
    my %fp;
    open(my $fh, '<', "$pki/fingerprints.txt") or die "fingerprints: $!";
    while (<$fh>) {
        chomp;
        my ($name, $fp, $subject) = split / /, $_, 3;
        $fp{$name} = [$fp, $subject];
    }
    close $fh;
    return \%fp;
}

# the policy; %o: purpose_rate => {code => "1r/m burst=1"},
# agency_rate => {name => "..."}, by => "fingerprint" | "subject" | "both"
sub policy {
    my %o = @_;
    my $fp = fingerprints();
    my $by = $o{by} // 'both';
    my $text = '';

    for my $code (sort keys %PURPOSES) {
        my ($statute, $methods, $uris, $rc) = @{$PURPOSES{$code}};
        my $rate = $o{purpose_rate}{$code};
        $text .= "    juki_purpose $code {\n"
               . "        statute \"$statute\";\n"
               . "        methods $methods;\n"
               . "        uri $uris;\n"
               . "        resident_code $rc;\n"
               . ($rate ? "        rate $rate;\n" : '')
               . "    }\n";
    }

    for my $name (sort keys %AGENCIES) {
        my ($kind, $cert, $purposes) = @{$AGENCIES{$name}};
        my ($sha, $subject) = @{$fp->{$cert}};
        my $rate = $o{agency_rate}{$name};
        $text .= "    juki_agency $name {\n"
               . "        kind $kind;\n"
               . ($by ne 'subject' ? "        certificate_sha256 $sha;\n" : '')
               . ($by ne 'fingerprint'
                  ? "        subject \"$subject\";\n" : '')
               . "        purposes @$purposes;\n"
               . ($rate ? "        rate $rate;\n" : '')
               . "    }\n";
    }

    return $text;
}

# the http{} part: policy, gateway servers, backend; %o: redis => address,
# location => extra directives in the gateway's /v1/ location, http =>
# extra http-level directives
sub http_config {
    my %o = @_;
    my $pki = juki_env('TEST_NGINX_PKI');
    my $key = juki_env('TEST_NGINX_AUDIT_KEY');
    my $redis = $o{redis} // '127.0.0.1:' . juki_env('TEST_NGINX_REDIS_PORT');
    my $timeout = $o{timeout} // '1s';
    my $loc = $o{location} // '';
    my $http = $o{http} // '';
    my ($gw, $be, $plain, $opt, $noca) = @ENV{qw(TEST_NGINX_GW_PORT
        TEST_NGINX_BACKEND_PORT TEST_NGINX_PLAIN_PORT TEST_NGINX_OPT_PORT
        TEST_NGINX_NOCA_PORT)};
    my $policy = policy(%o);
    my $gateway_location = <<"EOF_L";
        location / {
            juki on;
            juki_subject \$arg_code;
            $loc
            proxy_pass http://127.0.0.1:$be;
        }
EOF_L

    return <<"EOF_H";
    juki_redis $redis timeout=$timeout;
    juki_audit_key $key;
    juki_node test-node;
$policy
$http
    map \$http_x_test_cert \$test_cert_file {
        default       $pki/national;
        municipality  $pki/municipality;
        private       $pki/private;
        unmapped      $pki/unmapped;
        revoked       $pki/revoked;
        expired       $pki/expired;
        untrusted     $pki/untrusted;
    }
    map \$http_x_test_gw \$test_gw {
        default         https://127.0.0.1:$gw;
        plain           http://127.0.0.1:$plain;
        optional        https://127.0.0.1:$opt;
        optional_no_ca  https://127.0.0.1:$noca;
    }

    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;
    ssl_client_certificate $pki/ca.pem;
    ssl_crl $pki/crl.pem;

    server {
        listen 127.0.0.1:$gw ssl;
        listen 127.0.0.1:$plain;
        ssl_verify_client on;
$gateway_location
    }

    server {
        listen 127.0.0.1:$opt ssl;
        ssl_verify_client optional;
$gateway_location
    }

    server {
        listen 127.0.0.1:$noca ssl;
        ssl_verify_client optional_no_ca;
$gateway_location
    }

    server {
        listen 127.0.0.1:$be;
        access_log logs/backend.log;
        location / {
            default_type application/json;
            return 200 '{"agency":"\$http_juki_agency","kind":"\$http_juki_agency_kind","purpose":"\$http_juki_purpose","operator":"\$http_juki_operator","audit_id":"\$http_juki_audit_id","extra":"\$http_juki_extra","method":"\$request_method","uri":"\$request_uri"}\\n';
        }
    }
EOF_H
}

# the test client's side, in the default server: X-Test-Cert names the
# client certificate, X-Test-Gw the gateway (see http_config)
sub client_config {
    my $pki = juki_env('TEST_NGINX_PKI');
    return <<"EOF_C";
    location / {
        proxy_pass \$test_gw;
        proxy_ssl_certificate \$test_cert_file.pem;
        proxy_ssl_certificate_key \$test_cert_file.key;
        proxy_set_header X-Test-Cert "";
        proxy_set_header X-Test-Gw "";
        proxy_set_header Host localhost;
    }
    location /nocert/ {
        rewrite ^/nocert(/.*)\$ \$1 break;
        proxy_pass \$test_gw;
        proxy_set_header X-Test-Gw "";
        proxy_set_header Host localhost;
    }
EOF_C
}

# fill in the shared sections a block leaves out
sub juki_defaults {
    my $block = shift;
    $block->set_value('http_config', http_config())
        unless defined $block->http_config;
    $block->set_value('config', client_config())
        unless defined $block->config;
}

1;
