package JukiTest;

# Shared set-up of the juki test suite: the gateway under test (mutual TLS,
# the module on), a backend that echoes what it received, and a client
# location through which the plain-HTTP test client reaches the gateway
# with the client certificate a test names.  Works with the genuine
# Test::Nginx::Socket and with the bundled harness alike.

use strict;
use warnings;

use Exporter 'import';
use POSIX ();
our @EXPORT = qw(juki_env redis redis_flush redis_reset audit_records
                 backend_hits http_config client_config juki_defaults
                 redis2 redis2_start redis2_stop redis2_kill redis2_pause later
                 jukictl check_record dump_redis
                 a3_encode a3_decode);

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

# The test Redises run with the ACL of conf/juki-users.acl.in (scripts/redis.sh,
# REDIS_ACL): secret(USER) is USER's per-run password, from the files
# scripts/test.sh made; the harness itself talks to Redis as juki-admin, the
# gateway as juki-gw (http_config)
sub secret {
    my $user = shift;
    my $dir = juki_env('TEST_NGINX_REDIS_SECRETS');
    open(my $fh, '<', "$dir/$user") or die "no password of $user in $dir: $!\n";
    my $pw = <$fh>;
    close $fh;
    die "empty password of $user\n" unless defined $pw && length $pw;
    chomp $pw;
    return $pw;
}

# redis-cli's arguments and environment to authenticate as USER (default
# juki-admin): the password in REDISCLI_AUTH, never on the command line
sub cli_auth {
    my $user = shift // 'juki-admin';
    $ENV{REDISCLI_AUTH} = secret($user);
    return ('--user', $user);
}

sub redis {
    my @args = @_;
    my $port = juki_env('TEST_NGINX_REDIS_PORT');
    local $ENV{REDISCLI_AUTH};
    open(my $fh, '-|', 'redis-cli', cli_auth(), '-p', $port, '--no-raw',
         @args)
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}

sub redis_raw {
    my @args = @_;
    my $port = juki_env('TEST_NGINX_REDIS_PORT');
    local $ENV{REDISCLI_AUTH};
    open(my $fh, '-|', 'redis-cli', cli_auth(), '-p', $port, '--raw', @args)
        or die "redis-cli: $!";
    my @lines = <$fh>;
    close $fh;
    chomp @lines;
    return @lines;
}

sub redis_flush { redis('FLUSHALL'); }

# between blocks: lift every stop switch and forget every rate limit, but
# keep the trail
sub redis_reset {
    for my $pattern ('juki:*stop*', 'juki:*:rl*', 'juki:*:seen*',
                     'juki:*:fired:*', 'juki:*:denials:*')
    {
        my @keys = grep { length } redis_raw('--scan', '--pattern', $pattern);
        redis('DEL', @keys) if @keys;
    }
}

# a second Redis for the fault tests, started and killed by the tests
$ENV{TEST_NGINX_REDIS2_PORT} ||= juki_env('TEST_NGINX_REDIS_PORT') + 2;

sub redis2 { return '127.0.0.1:' . $ENV{TEST_NGINX_REDIS2_PORT} }

sub redis2_dir { return juki_env('TEST_NGINX_REDIS_DIR') . '-2' }

# (scripts/redis.sh start uses REDIS_ACL and REDIS_SECRETS from scripts/test.sh:
# the same users and passwords, and it loads the function library)
sub redis2_start {
    system('scripts/redis.sh', 'start', redis2_dir(),
           $ENV{TEST_NGINX_REDIS2_PORT}) == 0
        or die "cannot start the second redis\n";
}

sub redis2_stop {
    system("scripts/redis.sh stop '" . redis2_dir() . "' "
           . "$ENV{TEST_NGINX_REDIS2_PORT} >/dev/null 2>&1");
}

sub redis2_pause {
    my $ms = shift;
    local $ENV{REDISCLI_AUTH};
    system('redis-cli', cli_auth(), '-p', $ENV{TEST_NGINX_REDIS2_PORT},
           'CLIENT', 'PAUSE', $ms, 'ALL') == 0
        or die "cannot pause the second redis\n";
}

sub redis2_kill {
    my $pidfile = redis2_dir() . '/redis.pid';
    open(my $fh, '<', $pidfile) or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    kill 'KILL', $pid if $pid;
    select(undef, undef, undef, 0.1);
}

# runs CODE in a child after SECONDS, while the block's requests go on
my @children;

sub later {
    my ($seconds, $code) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        select(undef, undef, undef, $seconds);
        $code->();
        POSIX::_exit(0);
    }
    push @children, $pid;
}

END { waitpid($_, 0) for @children; }

# (as juki-admin unless JUKI_REDIS_USER and JUKI_REDIS_PASSWORD say otherwise:
# scripts/test.sh exports the admin's)
sub jukictl {
    my @args = @_;
    my $bin = juki_env('JUKICTL');
    my $out = `'$bin' --redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT} --key '$ENV{TEST_NGINX_AUDIT_KEY}' @args 2>&1`;
    return ($? >> 8, $out);
}

# the decisions Redis takes; every other one is the gateway's
our %REDIS_DECIDES = map { $_ => 1 } qw(allow deny:stopped deny:rate_limited);
our %GATEWAY_DECIDES = map { ("deny:$_" => 1) } qw(unverified_certificate
    unknown_agency bad_request bad_purpose bad_operator purpose_not_permitted
    resident_code_forbidden);

sub kmac {
    require Digest::SHA;
    open(my $fh, '<:raw', juki_env('TEST_NGINX_AUDIT_KEY')) or die $!;
    local $/;
    my $raw = <$fh>;
    close $fh;
    return Digest::SHA::hmac_sha256('juki-chain-v1', $raw);
}

sub ns { length($_[0] // '') . ':' . ($_[0] // '') . ',' }

sub pseudonym {
    my $code = shift;
    require Digest::SHA;
    open(my $fh, '<:raw', juki_env('TEST_NGINX_AUDIT_KEY')) or die $!;
    local $/;
    my $raw = <$fh>;
    close $fh;
    # A3: the first 16 bytes, in text 32 lower hex
    return substr(Digest::SHA::hmac_sha256_hex($code,
        Digest::SHA::hmac_sha256('juki-subject-v1', $raw)), 0, 32);
}

# every record of every audit list (A3, docs/audit.md): see
# "the A3 records" below
sub audit_records { return a3_records() }

sub backend_hits {
    my $log = ($ENV{TEST_NGINX_SERVROOT} // 't/servroot')
              . '/logs/backend.log';
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

# how each agency is mapped unless a test says otherwise: every file that
# uses agencies then meets one mapped by subject alone
our %MAPPED_BY = (
    'pension-service' => 'both',
    'shibuya-city'    => 'subject',
    'example-bank'    => 'fingerprint',
);

# the policy; %o: purpose_rate => {code => "1r/m burst=1"},
# agency_rate => {name => "..."}, by => "fingerprint" | "subject" | "both"
# (every agency; default %MAPPED_BY)
sub policy {
    my %o = @_;
    my $fp = fingerprints();
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
        my $by = $o{by} // $MAPPED_BY{$name};
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
    # the gateway's own credential, unless the test gives one or none
    $redis .= ' user=juki-gw password=' . secret('juki-gw')
        unless $o{noauth} || $redis =~ /\b(?:user|password)=/;
    # under valgrind a worker is some fifty times slower
    my $timeout = $o{timeout}
                  // ($ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '1s');
    my $loc = $o{location} // '';
    my $http = $o{http} // '';
    my $upstream = $o{upstream}
                   // 'http://127.0.0.1:' . $ENV{TEST_NGINX_BACKEND_PORT};
    my ($gw, $be, $plain, $opt, $noca) = @ENV{qw(TEST_NGINX_GW_PORT
        TEST_NGINX_BACKEND_PORT TEST_NGINX_PLAIN_PORT TEST_NGINX_OPT_PORT
        TEST_NGINX_NOCA_PORT)};
    my $policy = policy(%o);
    my $gateway_location = <<"EOF_L";
        location / {
            juki on;
            juki_subject \$arg_code;
            $loc
            proxy_pass $upstream;
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

# the test client's side (/slow takes 2 s: a pause between requests), in the default server: X-Test-Cert names the
# client certificate, X-Test-Gw the gateway (see http_config)
sub client_config {
    my $pki = juki_env('TEST_NGINX_PKI');
    return <<"EOF_C";
    location / {
        proxy_pass \$test_gw;
        add_header X-Upstream-Time \$upstream_header_time always;
        proxy_ssl_certificate \$test_cert_file.pem;
        proxy_ssl_certificate_key \$test_cert_file.key;
        proxy_set_header X-Test-Cert "";
        proxy_set_header X-Test-Gw "";
        proxy_set_header Host localhost;
    }
    location = /slow {
        limit_rate 100;
        default_type text/plain;
        return 200 "................................................................................\n";
    }
    location /fanout/ {
        ssi on;
        default_type text/html;
        return 200 '<!--# include virtual="/v1/probe/1" --><!--# include virtual="/v1/probe/2" --><!--# include virtual="/v1/probe/3" --><!--# include virtual="/v1/probe/4" --><!--# include virtual="/v1/probe/5" --><!--# include virtual="/v1/probe/6" --><!--# include virtual="/v1/probe/7" --><!--# include virtual="/v1/probe/8" --><!--# include virtual="/v1/probe/9" --><!--# include virtual="/v1/probe/10" --><!--# include virtual="/v1/probe/11" --><!--# include virtual="/v1/probe/12" --><!--# include virtual="/v1/probe/13" --><!--# include virtual="/v1/probe/14" --><!--# include virtual="/v1/probe/15" --><!--# include virtual="/v1/probe/16" --><!--# include virtual="/v1/probe/17" --><!--# include virtual="/v1/probe/18" --><!--# include virtual="/v1/probe/19" --><!--# include virtual="/v1/probe/20" -->';
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

# a background subscriber to juki:alerts; alerts() returns what it saw
my ($sub_pid, $sub_file);

sub subscribe_alerts {
    $sub_file = (juki_env('TEST_NGINX_REDIS_DIR')) . "/alerts.$$.txt";
    unlink $sub_file;
    $sub_pid = fork();
    die "fork: $!" unless defined $sub_pid;
    if ($sub_pid == 0) {
        open(STDOUT, '>', $sub_file) or POSIX::_exit(1);
        exec('redis-cli', cli_auth(), '-p', juki_env('TEST_NGINX_REDIS_PORT'),
             '--raw', 'SUBSCRIBE', 'juki:alerts') or POSIX::_exit(1);
    }
    # wait until the subscription exists
    for (1 .. 50) {
        last if redis('PUBSUB', 'NUMSUB', 'juki:alerts') =~ /"?1"?\s*$/;
        select(undef, undef, undef, 0.05);
    }
}

sub alerts {
    select(undef, undef, undef, 0.2);
    kill 'TERM', $sub_pid if $sub_pid;
    waitpid($sub_pid, 0) if $sub_pid;
    $sub_pid = undef;
    open(my $fh, '<', $sub_file) or return ();
    my @l = grep { /^\{/ } <$fh>;
    close $fh;
    chomp @l;
    return @l;
}


# ---- hostile-input helpers (t/030-hostile.t); nothing above depends on them

# where http_config_ext() has the backend log a second time: outside the
# servroot, so it survives the servroot being recreated for every block (and
# keeps growing in HUP mode, where the servroot is kept); one file per run
sub backend_log_path {
    return juki_env('TEST_NGINX_PKI') . '/../backend-hostile.log';
}

# the lines of that log (or of FILE)
sub backend_log_lines {
    my $file = shift // backend_log_path();
    open(my $fh, '<', $file) or return ();
    my @l = <$fh>;
    close $fh;
    return @l;
}

# http_config(%o) plus: crl => a file of $TEST_NGINX_PKI used as ssl_crl
# instead of crl.pem (e.g. 'crl-expired.pem'); the backend also logs to
# backend_log_path() unless backend_log => 0
sub http_config_ext {
    my %o = @_;
    my $crl = delete $o{crl};
    my $blog = exists $o{backend_log} ? delete $o{backend_log} : 1;
    my $pki = juki_env('TEST_NGINX_PKI');
    my $text = http_config(%o);
    if (defined $crl) {
        $text =~ s{ssl_crl \Q$pki\E/crl\.pem;}{ssl_crl $pki/$crl;}
            or die "http_config_ext: no ssl_crl line to replace\n";
    }
    if ($blog) {
        my $path = backend_log_path();
        $text =~ s{(access_log logs/backend\.log;)}{$1\n        access_log $path;}
            or die "http_config_ext: no backend access_log line\n";
    }
    return $text;
}

# every key and every value in Redis, as text: for the check that no
# resident code is stored anywhere
sub dump_redis {
    my $text = '';
    for my $key (grep { length } redis_raw('--scan')) {
        my ($type) = redis_raw('TYPE', $key);
        my @v = $type eq 'string' ? redis_raw('GET', $key)
              : $type eq 'hash'   ? redis_raw('HGETALL', $key)
              : $type eq 'stream' ? redis_raw('XRANGE', $key, '-', '+')
              : $type eq 'zset'   ? redis_raw('ZRANGE', $key, 0, -1,
                                              'WITHSCORES')
              : $type eq 'list'   ? redis_raw('LRANGE', $key, 0, -1)
              : $type eq 'set'    ? redis_raw('SMEMBERS', $key)
              : ("unknown type $type");
        $text .= join("\n", $key, @v) . "\n";
    }
    return $text;
}

# a third Redis with a unix socket, a password, an ACL user; stopped by
# redis3_stop() (the caller's END block or the next start)
sub redis3_dir { return juki_env('TEST_NGINX_REDIS_DIR') . '-3' }

sub redis3_start {
    my $dir = redis3_dir();
    redis3_stop();
    mkdir $dir;
    # the ACL of conf/juki-users.acl.in, with the default user given the
    # password ops-secret and juki-gw the password gw-secret
    my @acl = acl_lines();
    s/^user default .*/user default on >ops-secret ~* &* +\@all/ for @acl;
    s/^(user juki-gw on )#\@PASS_juki-gw\@/$1>gw-secret/ for @acl;
    @acl = grep { !/\@PASS_/ } @acl;
    open(my $fh, '>', "$dir/users.acl") or die "$dir/users.acl: $!\n";
    print $fh map { "$_\n" } @acl;
    close $fh or die "$dir/users.acl: $!\n";
    system('redis-server', '--port', '0', '--unixsocket', "$dir/redis.sock",
           '--unixsocketperm', '700', '--daemonize', 'yes',
           '--pidfile', "$dir/redis.pid", '--dir', $dir, '--save', '',
           '--appendonly', 'yes', '--appendfsync', 'always',
           '--aclfile', "$dir/users.acl",
           '--logfile', "$dir/redis.log") == 0
        or die "cannot start the third redis\n";
    for (1 .. 100) {
        last if -S "$dir/redis.sock"
                && `redis-cli -s $dir/redis.sock -a ops-secret --no-auth-warning ping 2>/dev/null` =~ /PONG/;
        select(undef, undef, undef, 0.05);
    }
    my $r = redis3('FUNCTION', 'LOAD', function_text());
    die "cannot load the function library into the third redis: $r\n"
        unless function_loaded($r);
}

# the lines of conf/juki-users.acl.in, without comments and blank lines
sub acl_lines {
    open(my $fh, '<', 'conf/juki-users.acl.in')
        or die "conf/juki-users.acl.in: $!\n";
    my @l = grep { !/^\s*(#|$)/ } <$fh>;
    close $fh;
    chomp @l;
    return @l;
}

# the function library's text (src/ngx_http_juki_function.h): the C string
# literals of NGX_HTTP_JUKI_FUNCTION_LIBRARY unescaped, the template; in list
# context also its id
sub function_template {
    open(my $fh, '<', 'src/ngx_http_juki_function.h')
        or die "src/ngx_http_juki_function.h: $!\n";
    local $/;
    my $src = <$fh>;
    close $fh;
    my ($def) = $src =~ /#define NGX_HTTP_JUKI_FUNCTION_LIBRARY(.*?)\n\n/s
        or die "no NGX_HTTP_JUKI_FUNCTION_LIBRARY\n";
    $def =~ s{/\*.*?\*/}{}gs;
    my $t = '';
    while ($def =~ /"((?:[^"\\]|\\.)*)"/g) {
        (my $lit = $1) =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
        $t .= $lit;
    }
    return $t;
}

sub function_id {
    require Digest::SHA;
    return substr(Digest::SHA::sha256_hex(function_template()), 0, 12);
}

# FUNCTION LOAD's reply says the library is there: loaded now, or already
# (a Redis restarted on its data dir keeps its functions)
sub function_loaded {
    my $id = function_id();
    return $_[0] =~ /^juki_\Q$id\E$/m
           || $_[0] =~ /Library 'juki_\Q$id\E' already exists/;
}

# the loaded text: every @V@ replaced by the id
sub function_text {
    my $id = function_id();
    (my $t = function_template()) =~ s/\@V\@/$id/g;
    return $t;
}

sub redis3_stop {
    my $dir = redis3_dir();
    return unless -f "$dir/redis.pid";
    system("redis-cli -s $dir/redis.sock -a ops-secret --no-auth-warning shutdown nosave >/dev/null 2>&1");
    unlink "$dir/redis.pid";
}

sub redis3 {
    my @args = @_;
    my $dir = redis3_dir();
    open(my $fh, '-|', 'redis-cli', '-s', "$dir/redis.sock", '-a',
         'ops-secret', '--no-auth-warning', @args)
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out // '';
}

# ---- the A3 records (docs/audit.md, "Records"): an encoder (a3_encode,
# for hand-built elements), a strict decoder (a3_decode), the records of Redis as hashes shaped like the A2
# ones the tests were written for (a3_records, audit_records), and the
# reader's checks (check_record, check_completion, check_summary,
# check_control, trail_problems).
#
# A hash: _stream (the list key), _id (the element's logical index, trimmed
# + i), _raw (its bytes), _type (W A C S K), agency (of the list, '' for _),
# writer (16 hex), seq, ts (unix ms), mac (32 hex), prev (the mac of the
# writer's seq - 1 record among those read, '' for a W or when absent),
# node and kid (from the writer's W record, '' without one), and by type:
#   W  phase 'writer', id WRITER-0, role (1 gateway, 2 jukictl)
#   A  id WRITER-SEQ, kind (text, '' for 0), cert and subject (32 hex or ''),
#      operator purpose method uri, gdecision (code), decision (text)
#   C  phase 'done', id = the audit id it completes (AWRITER-ASEQ), own_id
#      WRITER-SEQ, awriter, aseq, decision (text), status, bytes,
#      upstream_ms ('' when no upstream)
#   S  phase 'summary', id WRITER-SEQ, cause (reason name), second,
#      recorded, suppressed
#   K  phase 'control', id WRITER-SEQ, action stop|resume, scope
#      global|agency|operator, operator, reason, actor
# An element that does not decode: phase 'invalid', _error saying why.

our %A3_DECISION = (1 => 'allow', 2 => 'deny:stopped', 3 => 'deny:rate_limited',
    16 => 'deny:unverified_certificate', 17 => 'deny:unknown_agency',
    18 => 'deny:bad_request', 19 => 'deny:bad_purpose',
    20 => 'deny:bad_operator', 21 => 'deny:purpose_not_permitted',
    22 => 'deny:resident_code_forbidden');
our %A3_CODE = reverse %A3_DECISION;
our @A3_KIND = ('', qw(national prefecture municipality designated private));
our %A3_KIND_CODE = map { $A3_KIND[$_] => $_ } 0 .. $#A3_KIND;
our %A3_ACTION = (1 => 'stop', 2 => 'resume');
our %A3_SCOPE = (1 => 'global', 2 => 'agency', 3 => 'operator');

sub a3_varint {
    my $n = shift;
    die "a3_varint: not a natural number: $n\n" unless $n =~ /^\d+$/;
    my $b = '';
    while (1) {
        my $g = $n % 128;
        $n = int($n / 128);
        $b .= chr($n ? $g | 0x80 : $g);
        return $b unless $n;
    }
}

sub a3_str { return a3_varint(length $_[0]) . $_[0] }

sub a3_u48 {
    my $t = shift;
    return pack('nN', int($t / 4294967296), $t % 4294967296);
}

sub a3_hex {
    my ($h, $len, $what) = @_;
    return '' if !defined $h || $h eq '';
    my $n = 2 * $len;
    die "a3: $what is not $len hex bytes: $h\n" unless $h =~ /^[0-9a-f]{$n}$/;
    return pack('H*', $h);
}

# the keys of the key file: k_mac, k_sub, kid (8 bytes)
sub a3_keyfile {
    my $file = shift // juki_env('TEST_NGINX_AUDIT_KEY');
    require Digest::SHA;
    open(my $fh, '<:raw', $file) or die "$file: $!\n";
    local $/;
    my $raw = <$fh>;
    close $fh;
    return (Digest::SHA::hmac_sha256('juki-chain-v1', $raw),
            Digest::SHA::hmac_sha256('juki-subject-v1', $raw),
            substr(Digest::SHA::sha256($raw), 0, 8));
}

sub a3_kid { return unpack 'H*', (a3_keyfile(@_))[2] }

# mac16(agency, prev16, body)
sub a3_mac16 {
    my ($agency, $prev16, $body, $kmac) = @_;
    require Digest::SHA;
    $kmac //= (a3_keyfile())[0];
    $agency = '_' if !defined $agency || $agency eq '';
    return substr(Digest::SHA::hmac_sha256(
        'juki-v3' . a3_str($agency) . $prev16 . $body, $kmac), 0, 16);
}

# the body (type byte up to, not including, mac16) of a record given as a
# hash of the shape above (text fields); dies on a field that cannot be
# encoded
sub a3_body {
    my $r = shift;
    my $t = $r->{_type} // die "a3_body: no _type\n";
    my $w = a3_hex($r->{writer}, 8, 'writer');
    die "a3_body: no writer\n" unless length $w == 8;
    if ($t eq 'W') {
        my $kid = a3_hex($r->{kid}, 8, 'kid');
        die "a3_body: no kid\n" unless length $kid == 8;
        return 'W' . $w . a3_u48($r->{ts}) . $kid . a3_str($r->{node} // '')
             . chr($r->{role} // 1);
    }
    my $h = $t . $w . a3_varint($r->{seq}) . a3_u48($r->{ts});
    if ($t eq 'A') {
        my $g = $r->{gdecision};
        $g //= $REDIS_DECIDES{$r->{decision} // ''} ? 0
             : $A3_CODE{$r->{decision} // ''} // die "a3_body: decision\n";
        return $h . chr($A3_KIND_CODE{$r->{kind} // ''}
                        // die "a3_body: kind $r->{kind}\n")
             . a3_str(a3_hex($r->{cert}, 16, 'cert'))
             . a3_str(a3_hex($r->{subject}, 16, 'subject'))
             . join('', map { a3_str($r->{$_} // '') }
                    qw(operator purpose method uri))
             . chr($g);
    }
    if ($t eq 'C') {
        my $aw = a3_hex($r->{awriter}, 8, 'awriter');
        die "a3_body: no awriter\n" unless length $aw == 8;
        my $up = $r->{upstream_ms};
        return $h . $aw . a3_varint($r->{aseq})
             . chr($A3_CODE{$r->{decision} // ''} // die "a3_body: decision\n")
             . a3_varint($r->{status}) . a3_varint($r->{bytes})
             . a3_varint(!defined $up || $up eq '' ? 0 : $up + 1);
    }
    if ($t eq 'S') {
        return $h . chr($A3_CODE{'deny:' . ($r->{cause} // '')}
                        // die "a3_body: cause\n")
             . a3_varint($r->{second}) . a3_varint($r->{recorded})
             . a3_varint($r->{suppressed});
    }
    if ($t eq 'K') {
        my %ac = reverse %A3_ACTION;
        my %sc = reverse %A3_SCOPE;
        return $h . chr($ac{$r->{action} // ''} // die "a3_body: action\n")
             . chr($sc{$r->{scope} // ''} // die "a3_body: scope\n")
             . join('', map { a3_str($r->{$_} // '') }
                    qw(operator reason actor));
    }
    die "a3_body: unknown type $t\n";
}

# a whole element: body, mac16 over it chained on PREV16 (16 zero bytes for a
# W), and for an A record the decision byte Redis (or the gateway) appends;
# %o: agency (the list's, default the record's or _), prev16, decision_byte
# (an A record's last byte, default its decision's code), kmac
sub a3_encode {
    my ($r, %o) = @_;
    my $body = a3_body($r);
    my $mac = a3_mac16($o{agency} // $r->{agency}, $o{prev16} // ("\0" x 16),
                       $body, $o{kmac});
    my $e = $body . $mac;
    if ($r->{_type} eq 'A') {
        $e .= chr($o{decision_byte}
                  // $A3_CODE{$r->{decision}} // die "a3_encode: decision\n");
    }
    return $e;
}

# decodes one element (bytes); returns the hash (without _stream, agency,
# node, kid, prev), or one with phase 'invalid' and _error
sub a3_decode {
    my $e = shift;
    my $p = 0;
    my %r = (_raw => $e);
    my $ok = eval {
        my $need = sub {
            die "truncated\n" if $p + $_[0] > length $e;
            my $v = substr($e, $p, $_[0]);
            $p += $_[0];
            return $v;
        };
        my $u8 = sub { ord $need->(1) };
        my $varint = sub {
            my ($v, $mul) = (0, 1);
            for my $i (0 .. 9) {
                my $b = $u8->();
                $v += ($b & 0x7f) * $mul;
                $mul *= 128;
                if (!($b & 0x80)) {
                    die "varint not minimal\n" if $b == 0 && $i > 0;
                    return $v;
                }
            }
            die "varint longer than 10 bytes\n";
        };
        my $str = sub {
            my $n = $varint->();
            die "str past the end\n" if $p + $n > length $e;
            return $need->($n);
        };
        my $u48 = sub { my ($h, $l) = unpack 'nN', $need->(6);
                        $h * 4294967296 + $l };
        my $t = $need->(1);
        $r{_type} = $t;
        $r{writer} = unpack 'H*', $need->(8);
        if ($t eq 'W') {
            $r{seq} = 0;
            $r{ts} = $u48->();
            $r{kid} = unpack 'H*', $need->(8);
            $r{node} = $str->();
            $r{role} = $u8->();
            die "bad role $r{role}\n" unless $r{role} == 1 || $r{role} == 2;
            $r{phase} = 'writer';
        } elsif ($t =~ /^[ACSK]$/) {
            $r{seq} = $varint->();
            die "seq 0 is a W record's\n" unless $r{seq} >= 1;
            $r{ts} = $u48->();
        } else {
            die "unknown type\n";
        }
        if ($t eq 'A') {
            my $k = $u8->();
            die "bad kind $k\n" unless $k <= $#A3_KIND;
            $r{kind} = $A3_KIND[$k];
            for my $f (qw(cert subject)) {
                my $v = $str->();
                die "bad $f length\n" unless length $v == 0 || length $v == 16;
                $r{$f} = unpack 'H*', $v;
            }
            $r{$_} = $str->() for qw(operator purpose method uri);
            my $g = $u8->();
            $r{gdecision} = $g;
        } elsif ($t eq 'C') {
            $r{awriter} = unpack 'H*', $need->(8);
            $r{aseq} = $varint->();
            my $d = $u8->();
            die "bad decision $d\n" unless $d >= 1 && $d <= 3;
            $r{decision} = $A3_DECISION{$d};
            $r{status} = $varint->();
            $r{bytes} = $varint->();
            my $up = $varint->();
            $r{upstream_ms} = $up ? $up - 1 : '';
            $r{phase} = 'done';
        } elsif ($t eq 'S') {
            my $c = $u8->();
            die "bad cause $c\n" unless $c >= 16 && $c <= 18;
            ($r{cause} = $A3_DECISION{$c}) =~ s/^deny://;
            $r{$_} = $varint->() for qw(second recorded suppressed);
            $r{phase} = 'summary';
        } elsif ($t eq 'K') {
            my $a = $u8->();
            my $sc = $u8->();
            $r{action} = $A3_ACTION{$a} // die "bad action $a\n";
            $r{scope} = $A3_SCOPE{$sc} // die "bad scope $sc\n";
            $r{$_} = $str->() for qw(operator reason actor);
            $r{phase} = 'control';
        }
        $r{_body_len} = $p;
        $r{mac} = unpack 'H*', $need->(16);
        if ($t eq 'A') {
            my $d = $u8->();
            die "bad decision $d\n" unless $A3_DECISION{$d};
            if ($r{gdecision} == 0) {
                die "decision $d where Redis decides\n" unless $d <= 3;
            } else {
                die "bad gdecision $r{gdecision}\n"
                    unless $r{gdecision} >= 16 && $A3_DECISION{$r{gdecision}};
                die "decision $d is not gdecision $r{gdecision}\n"
                    unless $d == $r{gdecision};
            }
            $r{decision} = $A3_DECISION{$d};
        }
        die "trailing bytes\n" if $p != length $e;
        1;
    };
    if (!$ok) {
        chomp(my $err = $@);
        return { _raw => $e, _type => $r{_type} // '', phase => 'invalid',
                 _error => $err };
    }
    my $own = "$r{writer}-$r{seq}";
    if ($r{_type} eq 'C') {
        $r{own_id} = $own;
        $r{id} = "$r{awriter}-$r{aseq}";
    } else {
        $r{id} = $own;
    }
    return \%r;
}

# every element of every audit list (keys juki:*:audit, sorted), decoded, in
# list order; then each record gets its writer's node and kid and its prev
sub a3_records {
    my $c = JukiTest::Conn->new(user => 'juki-admin');
    my (@keys, $cursor);
    $cursor = 0;
    do {
        my $r = $c->cmd('SCAN', $cursor, 'MATCH', 'juki:*:audit',
                        'COUNT', 1000);
        die 'SCAN: ' . $r->msg . "\n" if ref $r eq 'JukiTest::Err';
        $cursor = $r->[0];
        push @keys, @{$r->[1]};
    } while ($cursor ne '0');
    my @records;
    for my $key (sort keys %{{ map { $_ => 1 } @keys }}) {
        next unless $c->cmd('TYPE', $key) eq 'list';
        my ($agency) = $key =~ /^juki:\{([^{}]+)\}:audit$/ or next;
        my $trimmed = $c->cmd('GET', "juki:{$agency}:trimmed") // 0;
        my $l = $c->cmd('LRANGE', $key, 0, -1);
        for my $i (0 .. $#$l) {
            my $r = a3_decode($l->[$i]);
            $r->{_stream} = $key;
            $r->{_id} = $trimmed + $i;
            $r->{agency} = $agency eq '_' ? '' : $agency;
            push @records, $r;
        }
    }
    $c->close;
    a3_link(\@records);
    return @records;
}

# node, kid and prev of each record from the others of its writer
sub a3_link {
    my $records = shift;
    my (%w, %by);
    for my $r (@$records) {
        next if ($r->{phase} // '') eq 'invalid';
        $w{$r->{writer}} //= $r if $r->{_type} eq 'W';
        $by{"$r->{writer} $r->{seq}"} //= $r;
    }
    for my $r (@$records) {
        next if ($r->{phase} // '') eq 'invalid';
        my $W = $w{$r->{writer}};
        $r->{node} = $W ? $W->{node} : '';
        $r->{kid} = $W ? $W->{kid} : '' unless $r->{_type} eq 'W';
        my $p = $r->{seq} ? $by{"$r->{writer} " . ($r->{seq} - 1)} : undef;
        $r->{prev} = $p ? $p->{mac} : '';
    }
}

# a record's mac16 recomputed from its fields (so an edited field shows) and
# its prev: 16 zero bytes for a W, else the predecessor's (none: fails)
sub a3_mac_ok {
    my ($r, $type) = @_;
    return 0 unless ($r->{_type} // '') eq $type;
    my $prev16;
    if ($type eq 'W') {
        return 0 unless $r->{seq} == 0;
        $prev16 = "\0" x 16;
    } else {
        return 0 unless ($r->{prev} // '') =~ /^[0-9a-f]{32}$/;
        $prev16 = pack 'H*', $r->{prev};
    }
    my $body = eval { a3_body($r) } // return 0;
    my $list = ($r->{_stream} // '') =~ /^juki:\{([^{}]+)\}:audit$/ ? $1
             : return 0;
    return unpack('H*', a3_mac16($list, $prev16, $body)) eq ($r->{mac} // '');
}

# an A record: mac, and the decision rules (gdecision 0: Redis decided,
# decision 1-3; else decision = gdecision, a gateway reason)
sub check_record {
    my $r = shift;
    return 0 if exists $r->{phase};
    my $d = $A3_CODE{$r->{decision} // ''} // return 0;
    my $g = $r->{gdecision} // return 0;
    return 0 if $g == 0 ? $d > 3 : $g != $d || $g < 16;
    return a3_mac_ok($r, 'A');
}

sub check_completion {
    my $c = shift;
    return 0 unless ($c->{phase} // '') eq 'done';
    return a3_mac_ok($c, 'C');
}

sub check_summary {
    my $s = shift;
    return 0 unless ($s->{phase} // '') eq 'summary';
    return 0 unless ($s->{_stream} // '') eq 'juki:{_}:audit';
    return a3_mac_ok($s, 'S');
}

sub check_control {
    my $k = shift;
    return 0 unless ($k->{phase} // '') eq 'control';
    return a3_mac_ok($k, 'K');
}

sub check_writer {
    my $w = shift;
    return 0 unless ($w->{phase} // '') eq 'writer';
    return 0 unless ($w->{_stream} // '') eq 'juki:{_}:audit';
    return a3_mac_ok($w, 'W');
}

# The reader's rules over RECORDS (audit_records()): every element decodes;
# every mac verifies, chained by writer from its W record (seq 0, in
# juki:{_}:audit, with this key's kid), seq 0, 1, 2 ... without gap or
# repeat; every completion names an A record of its own list, appended
# before it, that Redis decided, with the same decision, and at most one
# completion per A record.  Returns the list of problems found and the
# number of Redis-decided A records left unconfirmed.
sub trail_problems {
    my @records = @_;
    my (@bad, %audit, %done);
    my $kid = a3_kid();
    for my $r (@records) {
        my $ph = $r->{phase} // '';
        my $where = "$r->{_stream} [$r->{_id}]";
        if ($ph eq 'invalid') {
            push @bad, "$where: does not decode: $r->{_error}";
            next;
        }
        # named as in A2: list and id (a completion: the audit id it
        # completes), then the element
        $where = "$r->{_stream} $r->{id}";
        my $el = "(element $r->{_id}, seq $r->{seq})";
        my $ok = $ph eq ''        ? check_record($r)
               : $ph eq 'done'    ? check_completion($r)
               : $ph eq 'summary' ? check_summary($r)
               : $ph eq 'control' ? check_control($r)
               : $ph eq 'writer'  ? check_writer($r) : 0;
        push @bad, "$where: " . ($ph || 'audit') . " mac $el" unless $ok;
        push @bad, "$where: kid $r->{kid} is not the key's $el"
            unless ($r->{kid} // '') eq $kid;
        $audit{"$r->{_stream} $r->{id}"} = $r if $ph eq '';
    }
    for my $c (grep { ($_->{phase} // '') eq 'done' } @records) {
        my $key = "$c->{_stream} $c->{id}";
        my $a = $audit{$key};
        if (!$a) {
            push @bad, "$key: completion of no audit record of its list";
        } elsif ($a->{_id} >= $c->{_id}) {
            push @bad, "$key: completion before its audit record";
        } elsif (!$REDIS_DECIDES{$a->{decision}}) {
            push @bad, "$key: completion of a decision the gateway took";
        } elsif ($a->{decision} ne ($c->{decision} // '')) {
            push @bad, "$key: decision $a->{decision}, completion says "
                       . ($c->{decision} // '');
        }
        push @bad, "$key: second completion" if $done{$key}++;
    }
    # each writer's chain: seq 0 (W), 1, 2 ... (the macs use prev)
    my %writer;
    push @{$writer{$_->{writer}}}, $_
        for grep { ($_->{phase} // '') ne 'invalid' } @records;
    for my $w (sort keys %writer) {
        my @c = sort { $a->{seq} <=> $b->{seq} } @{$writer{$w}};
        for my $i (0 .. $#c) {
            if ($c[$i]{seq} != $i) {
                push @bad, "writer $w: seq " . ($c[$i]{seq} > $i ? 'gap' : 'repeat')
                           . " at seq $c[$i]{seq}";
                last;
            }
        }
        push @bad, "writer $w: no W record" unless $c[0]{_type} eq 'W';
    }
    my $unconfirmed = grep { $REDIS_DECIDES{$_->{decision}}
                             && !$done{"$_->{_stream} $_->{id}"} }
                      values %audit;
    return (\@bad, $unconfirmed);
}

# the arguments of one line of MONITOR's output, its escapes (sdscatrepr:
# \\ \" \n \r \t \a \b \xHH) undone: binary-safe
sub monitor_args {
    my $l = shift;
    my @a;
    while ($l =~ /"((?:[^"\\]|\\.)*)"/g) {
        (my $v = $1) =~ s/\\(x[0-9a-fA-F]{2}|.)/
            length $1 == 3 ? chr(hex substr($1, 1))
            : { n => "\n", r => "\r", t => "\t", a => "\a",
                b => "\b" }->{$1} \/\/ $1/ge;
        push @a, $v;
    }
    return @a;
}

# Redis over TLS (t/027-redis-tls.t): NAME names its directory, PORT is its
# tls-port (no plaintext port); %o: cert => a server certificate of t/pki.sh
# ('redis' or 'redis-untrusted'), auth_clients => 'no' | 'yes'.  Stopped by
# redis_tls_stop(NAME), or by scripts/test.sh's cleanup.
my %tls_redis;

sub redis_tls_dir { return juki_env('TEST_NGINX_REDIS_DIR') . "-tls-$_[0]" }

sub redis_tls_start {
    my ($name, $port, %o) = @_;
    my $pki = juki_env('TEST_NGINX_PKI');
    my $dir = redis_tls_dir($name);
    my $cert = $o{cert} // 'redis';
    redis_tls_stop($name);
    mkdir $dir;
    $tls_redis{$name} = { port => $port, cert => $cert };
    system('redis-server', '--port', '0', '--bind', '127.0.0.1',
           '--tls-port', $port,
           '--tls-cert-file', "$pki/$cert.pem",
           '--tls-key-file', "$pki/$cert.key",
           '--tls-ca-cert-file', "$pki/ca.pem",
           '--tls-auth-clients', $o{auth_clients} // 'no',
           '--daemonize', 'yes', '--pidfile', "$dir/redis.pid",
           '--dir', $dir, '--save', '', '--appendonly', 'yes',
           '--appendfsync', 'always', '--logfile', "$dir/redis.log",
           # the main test Redis's users and passwords; the untrusted one
           # is someone else's, an open Redis that must receive nothing
           ($cert eq 'redis-untrusted' ? ()
            : ('--aclfile', juki_env('TEST_NGINX_REDIS_DIR') . '/users.acl')))
        == 0
        or die "cannot start the tls redis $name\n";
    for (1 .. 100) {
        last if redis_tls($name, 'PING') =~ /PONG/;
        select(undef, undef, undef, 0.05);
    }
    return if $cert eq 'redis-untrusted';
    my $r = redis_tls($name, 'FUNCTION', 'LOAD', function_text());
    die "cannot load the function library into the tls redis $name: $r\n"
        unless function_loaded($r);
}

# redis-cli over TLS, with the gateway's client certificate
sub redis_tls {
    my ($name, @args) = @_;
    my $pki = juki_env('TEST_NGINX_PKI');
    my $r = $tls_redis{$name} or die "no tls redis $name\n";
    my $ca = $r->{cert} eq 'redis-untrusted' ? 'untrusted-ca' : 'ca';
    local $ENV{REDISCLI_AUTH};
    my @auth = $r->{cert} eq 'redis-untrusted' ? () : cli_auth();
    open(my $fh, '-|', 'redis-cli', @auth, '--tls', '--cacert', "$pki/$ca.pem",
         '--cert', "$pki/redis-client.pem", '--key', "$pki/redis-client.key",
         '-h', '127.0.0.1', '-p', $r->{port}, '--raw', @args)
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out // '';
}

sub redis_tls_pid {
    my $name = shift;
    open(my $fh, '<', redis_tls_dir($name) . '/redis.pid') or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid if defined $pid;
    return $pid;
}

sub redis_tls_kill {
    my $name = shift;
    my $pid = redis_tls_pid($name) or return;
    kill 'KILL', $pid;
    select(undef, undef, undef, 0.1);
}

sub redis_tls_stop {
    my $name = shift;
    my $pid = redis_tls_pid($name) or return;
    kill 'TERM', $pid;
    # gone, or a zombie nobody reaps (a daemon's parent is init)
    for (1 .. 100) {
        last unless kill 0, $pid;
        open(my $st, '<', "/proc/$pid/stat") or last;
        my $stat = <$st> // '';
        close $st;
        last if $stat =~ /\) Z /;
        select(undef, undef, undef, 0.05);
    }
    unlink redis_tls_dir($name) . '/redis.pid';
}

# waits (up to SECONDS) until some client other than the asking redis-cli
# is connected to the second Redis, e.g. a worker's connection; true if so
sub redis2_wait_client {
    my $seconds = shift // 5;
    my $until = time + $seconds;
    while (1) {
        local $ENV{REDISCLI_AUTH};
        my @auth = cli_auth();
        my @clients = grep { /\bid=/ }
            `redis-cli @auth -p $ENV{TEST_NGINX_REDIS2_PORT} CLIENT LIST 2>/dev/null`;
        return 1 if @clients > 1;
        return 0 if time > $until;
        select(undef, undef, undef, 0.05);
    }
}

# ---- a binary-safe Redis connection as one ACL user (t/095-acl.t, the A3
# decoder tests): JukiTest::Conn->new(user => U) connects to the test Redis
# and authenticates as U with its per-run password (no user: none);
# ->cmd(ARG...) returns the reply: a string, an integer, undef (nil), an
# array ref, or a JukiTest::Err (->{msg}) for an error reply.

package JukiTest::Err;

sub new { my ($c, $m) = @_; return bless { msg => $m }, $c }
sub msg { return $_[0]{msg} }

package JukiTest::Conn;

use IO::Socket::INET;

sub new {
    my ($class, %o) = @_;
    my $port = $o{port} // JukiTest::juki_env('TEST_NGINX_REDIS_PORT');
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "cannot connect to redis on port $port: $!\n";
    binmode $s;
    my $self = bless { s => $s, buf => '' }, $class;
    if (defined $o{user}) {
        my $r = $self->cmd('AUTH', $o{user},
                           $o{password} // JukiTest::secret($o{user}));
        die "AUTH $o{user}: " . (ref $r ? $r->msg : $r) . "\n"
            unless !ref $r && $r eq 'OK';
    }
    return $self;
}

sub send {
    my ($self, @a) = @_;
    my $m = '*' . scalar(@a) . "\r\n";
    $m .= '$' . length($_) . "\r\n$_\r\n" for map { $_ // '' } @a;
    my $s = $self->{s};
    print $s $m or die "redis write: $!\n";
    $s->flush;
}

sub fill {
    my ($self, $n) = @_;
    while (length($self->{buf}) < $n) {
        my $r = sysread($self->{s}, $self->{buf}, 65536,
                        length $self->{buf});
        die "redis read: " . (defined $r ? 'closed' : $!) . "\n" unless $r;
    }
}

sub line {
    my $self = shift;
    my $i;
    while (($i = index($self->{buf}, "\r\n")) < 0) {
        $self->fill(length($self->{buf}) + 1);
    }
    my $l = substr($self->{buf}, 0, $i);
    substr($self->{buf}, 0, $i + 2) = '';
    return $l;
}

sub reply {
    my $self = shift;
    my $l = $self->line;
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return $v if $t eq '+';
    return JukiTest::Err->new($v) if $t eq '-';
    return $v + 0 if $t eq ':';
    if ($t eq '$') {
        return undef if $v < 0;
        $self->fill($v + 2);
        my $d = substr($self->{buf}, 0, $v);
        substr($self->{buf}, 0, $v + 2) = '';
        return $d;
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [map { $self->reply } 1 .. $v];
    }
    die "redis: bad reply line\n";
}

sub cmd {
    my ($self, @a) = @_;
    $self->send(@a);
    return $self->reply;
}

sub close { close $_[0]{s} }

package JukiTest;

1;
