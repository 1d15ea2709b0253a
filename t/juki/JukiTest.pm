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
                 jukictl check_record dump_redis);

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
    system('redis-cli', '-p', $ENV{TEST_NGINX_REDIS2_PORT}, 'CLIENT', 'PAUSE',
           $ms, 'ALL') == 0 or die "cannot pause the second redis\n";
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

# an A2 audit record's mac, recomputed from the key file: it binds the
# decision when the gateway took it, "redis" when Redis did (docs/audit.md)
sub check_record {
    my $r = shift;
    require Digest::SHA;
    my $d = $r->{decision} // return 0;
    my $bound = $GATEWAY_DECIDES{$d} ? $d : $REDIS_DECIDES{$d} ? 'redis'
                                                                : return 0;
    return 0 if exists $r->{dmac} || exists $r->{phase};
    my $m = 'A2' . join('', map { ns($r->{$_}) }
        qw(id ts node writer seq kid agency kind cert operator purpose
           subject method uri prev)) . ns($bound);
    return Digest::SHA::hmac_sha256_hex($m, kmac()) eq ($r->{mac} // '');
}

sub pseudonym {
    my $code = shift;
    require Digest::SHA;
    open(my $fh, '<:raw', juki_env('TEST_NGINX_AUDIT_KEY')) or die $!;
    local $/;
    my $raw = <$fh>;
    close $fh;
    return Digest::SHA::hmac_sha256_hex($code,
        Digest::SHA::hmac_sha256('juki-subject-v1', $raw));
}

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
        exec('redis-cli', '-p', juki_env('TEST_NGINX_REDIS_PORT'), '--raw',
             'SUBSCRIBE', 'juki:alerts') or POSIX::_exit(1);
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
    system('redis-server', '--port', '0', '--unixsocket', "$dir/redis.sock",
           '--unixsocketperm', '700', '--daemonize', 'yes',
           '--pidfile', "$dir/redis.pid", '--dir', $dir, '--save', '',
           '--appendonly', 'yes', '--appendfsync', 'always',
           '--requirepass', 'ops-secret',
           '--user', 'default', 'on', '>ops-secret', '~*', '&*', '+@all',
           '--user', 'juki-gw', 'on', '>gw-secret', '~juki:*', '&*',
           '+@all', '--logfile', "$dir/redis.log") == 0
        or die "cannot start the third redis\n";
    for (1 .. 100) {
        last if -S "$dir/redis.sock"
                && `redis-cli -s $dir/redis.sock -a ops-secret --no-auth-warning ping 2>/dev/null` =~ /PONG/;
        select(undef, undef, undef, 0.05);
    }
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
    my $out = `redis-cli -s $dir/redis.sock -a ops-secret --no-auth-warning @args 2>&1`;
    return $out;
}

# ---- the trail's decision binding (t/080-trail.t, t/085-flood.t)

# a C2 completion record's mac
sub check_completion {
    my $c = shift;
    require Digest::SHA;
    return 0 unless ($c->{phase} // '') eq 'done';
    my $m = 'C2' . join '', map { ns($c->{$_}) }
        qw(id phase ts node writer seq kid decision status bytes upstream_ms
           prev);
    return Digest::SHA::hmac_sha256_hex($m, kmac()) eq ($c->{mac} // '');
}

# an S1 summary record's mac
sub check_summary {
    my $s = shift;
    require Digest::SHA;
    return 0 unless ($s->{phase} // '') eq 'summary';
    my $m = 'S1' . join '', map { ns($s->{$_}) }
        qw(id phase ts node writer seq kid cause second recorded suppressed
           prev);
    return Digest::SHA::hmac_sha256_hex($m, kmac()) eq ($s->{mac} // '');
}

# The rules of docs/audit.md over RECORDS (audit_records()): every audit,
# completion and summary mac verifies; every completion names an audit
# record of its own stream that Redis decided, with the same decision; at
# most one completion per audit id; each writer's chain is whole from seq
# 1 (control records are checked for their chain only).  Returns the list of
# problems found and the number of Redis-decided records left unconfirmed.
sub trail_problems {
    my @records = @_;
    my (@bad, %audit, %done);
    for my $r (@records) {
        my $ph = $r->{phase} // '';
        if ($ph eq '') {
            push @bad, "$r->{_stream} $r->{id}: audit mac (entry $r->{_id})"
                unless check_record($r);
            $audit{"$r->{_stream} $r->{id}"} = $r;
        } elsif ($ph eq 'done') {
            push @bad, "$r->{_stream} $r->{id}: completion mac (entry $r->{_id})"
                unless check_completion($r);
        } elsif ($ph eq 'summary') {
            push @bad, "$r->{_stream} $r->{id}: summary mac (entry $r->{_id})"
                unless check_summary($r);
        }
    }
    for my $c (grep { ($_->{phase} // '') eq 'done' } @records) {
        my $key = "$c->{_stream} $c->{id}";
        my $a = $audit{$key};
        if (!$a) {
            push @bad, "$key: completion of no audit record of its stream";
        } elsif (!$REDIS_DECIDES{$a->{decision}}) {
            push @bad, "$key: completion of a decision the gateway took";
        } elsif ($a->{decision} ne ($c->{decision} // '')) {
            push @bad, "$key: decision $a->{decision}, completion says "
                       . ($c->{decision} // '');
        }
        push @bad, "$key: second completion" if $done{$key}++;
    }
    # each writer's chain: seq 1, 2, 3 ... and prev = the previous mac
    my %writer;
    push @{$writer{$_->{writer} // ''}}, $_ for @records;
    for my $w (sort keys %writer) {
        my @c = sort { $a->{seq} <=> $b->{seq} } @{$writer{$w}};
        my $prev = '';
        for my $i (0 .. $#c) {
            if ($c[$i]{seq} != $i + 1) {
                push @bad, "writer $w: seq gap before seq $c[$i]{seq}";
                last;
            }
            if (($c[$i]{prev} // '') ne $prev) {
                push @bad, "writer $w seq $c[$i]{seq}: prev mismatch";
                last;
            }
            $prev = $c[$i]{mac} // '';
        }
    }
    my $unconfirmed = grep { $REDIS_DECIDES{$_->{decision}}
                             && !$done{"$_->{_stream} $_->{id}"} }
                      values %audit;
    return (\@bad, $unconfirmed);
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
           '--appendfsync', 'always', '--logfile', "$dir/redis.log") == 0
        or die "cannot start the tls redis $name\n";
    for (1 .. 100) {
        last if redis_tls($name, 'PING') =~ /PONG/;
        select(undef, undef, undef, 0.05);
    }
}

# redis-cli over TLS, with the gateway's client certificate
sub redis_tls {
    my ($name, @args) = @_;
    my $pki = juki_env('TEST_NGINX_PKI');
    my $r = $tls_redis{$name} or die "no tls redis $name\n";
    my $ca = $r->{cert} eq 'redis-untrusted' ? 'untrusted-ca' : 'ca';
    open(my $fh, '-|', 'redis-cli', '--tls', '--cacert', "$pki/$ca.pem",
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
        my @clients = grep { /\bid=/ }
            `redis-cli -p $ENV{TEST_NGINX_REDIS2_PORT} CLIENT LIST 2>/dev/null`;
        return 1 if @clients > 1;
        return 0 if time > $until;
        select(undef, undef, undef, 0.05);
    }
}

1;
