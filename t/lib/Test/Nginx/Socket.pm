package Test::Nginx::Socket;

# Bundled, pure-Perl, Test::Nginx::Socket-compatible test harness.
#
# This is NOT openresty's Test::Nginx (which is not packaged for Debian 12);
# it is a small independent implementation of the subset of its interface
# that our t/*.t files use, written from the module's documentation.  The
# Makefile puts t/lib on @INC only when the genuine module is missing.
# See docs/testing.md for the supported sections, functions and
# environment variables.

use strict;
use warnings;

use Test::More ();
use Test::Builder ();
use Cwd ();
use File::Path ();
use File::Spec ();
use List::Util ();
use POSIX ();
use Time::HiRes ();
use IO::Socket::INET ();

use Test::Nginx::Harness::Block ();
use Test::Nginx::Harness::Client ();
use Test::Nginx::Harness::Server ();

our $VERSION = '0.01_compat';
our $IsBundledHarness = 1;

# ------------------------------------------------------------- settings --

our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} ? 1 : 0;
our $MasterOn          = (($ENV{TEST_NGINX_MASTER_PROCESS} // '') eq 'on') ? 1 : 0;
our $Workers           = 1;
our $WorkerConnections = 64;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $NoLongString      = 0;
our $NoDiff            = 0;
our $NoRootLocation    = 0;
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our $ServerName        = 'localhost';
our $UseHup            = $ENV{TEST_NGINX_USE_HUP} ? 1 : 0;
our $CheckAccumErrLog  = 0;
our $Timeout           = _parse_time($ENV{TEST_NGINX_TIMEOUT}) || 3;
our $NoNginxManager    = $ENV{TEST_NGINX_NO_NGINX_MANAGER} ? 1 : 0;
our $FailOnAlert       = $ENV{TEST_NGINX_FAIL_ON_ALERT} ? 1 : 0;
our $UseValgrind       = $ENV{TEST_NGINX_USE_VALGRIND} || '';
our $NoClean           = $ENV{TEST_NGINX_NO_CLEAN} ? 1 : 0;

our $ServerAddr          = '127.0.0.1';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ENV{TEST_NGINX_PORT} || $ServerPort;
our $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || File::Spec->catdir(Cwd::getcwd(), 't', 'servroot'));
$ServRoot =~ s{/+\z}{};
our $HtmlDir  = "$ServRoot/html";
our $LogDir   = "$ServRoot/logs";
our $ConfDir  = "$ServRoot/conf";
our $ConfFile = "$ConfDir/nginx.conf";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $PidFile  = "$LogDir/nginx.pid";

$ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
$ENV{TEST_NGINX_CLIENT_PORT} //= $ServerPortForClient;
$ENV{TEST_NGINX_HTML_DIR}    //= $HtmlDir;
$ENV{TEST_NGINX_SERVROOT_DIR} //= $ServRoot;

# aliases some test files use with the genuine library
{
    no strict 'refs';
    for my $v (qw(ServerPort ServerPortForClient ServRoot PidFile ConfFile
                  RepeatEach ServerAddr HtmlDir ErrLogFile LogLevel Timeout)) {
        *{"Test::Nginx::Util::$v"} = \${"Test::Nginx::Socket::$v"};
    }
}

my %SUPPORTED_SECTIONS = map { $_ => 1 } qw(
    main_config post_main_config http_config config server_name log_level
    request request_eval more_headers raw_request pipelined_requests
    raw_request_middle_delay shutdown
    error_code error_code_like
    response_body response_body_eval response_body_like response_body_unlike
    response_headers response_headers_like
    raw_response_headers_like raw_response_headers_unlike
    error_log no_error_log grep_error_log grep_error_log_out
    shutdown_error_log no_shutdown_error_log
    timeout wait init abort ignore_response user_files
    skip_nginx skip_nginx2 skip_eval must_die reload_fails
    ONLY SKIP LAST
);

sub supported_sections { sort keys %SUPPORTED_SECTIONS }

# ------------------------------------------------------------- exporting --

# What the genuine library exports, no more: a test file that calls
# something else (done_testing, note, explain, BAIL_OUT, subtest, run_test,
# $ServerPort ...) must fail here as it fails there (there it is "Undefined
# subroutine"); such files call Test::More::done_testing() etc. by name.
our @EXPORT_FUNCS = qw(
    run_tests blocks repeat_each no_shuffle master_on master_off
    workers worker_connections log_level no_long_string no_diff
    no_root_location env_to_nginx add_block_preprocessor add_cleanup_handler
    server_name use_hup check_accum_error_log timeout bail_out html_dir
    server_root server_port server_port_for_client server_addr
    no_nginx_manager is_str
);

# The Test::More functions the genuine library passes on (through
# Test::Base); "is" included.
our @EXPORT_TEST_MORE = qw(
    ok is isnt like unlike is_deeply cmp_ok skip todo_skip pass fail
    eq_array eq_hash eq_set plan can_ok isa_ok diag use_ok
);

sub import {
    my ($class, @args) = @_;
    my $caller = caller;
    my @plan;
    while (@args) {
        my $a = shift @args;
        next unless defined $a;
        if ($a eq '-Base' || $a eq '-base') {
            no strict 'refs';
            push @{"${caller}::ISA"}, __PACKAGE__ unless $caller->isa(__PACKAGE__);
        } elsif ($a eq 'no_plan') {
            @plan = ('no_plan');
        } elsif ($a eq 'tests' || $a eq 'skip_all') {
            @plan = ($a => shift @args);
        } else {
            die "Test::Nginx::Socket (bundled harness): unknown import argument '$a'\n";
        }
    }
    no strict 'refs';
    for my $f (@EXPORT_TEST_MORE) {
        *{"${caller}::$f"} = \&{"Test::More::$f"};
    }
    for my $f (@EXPORT_FUNCS) {
        *{"${caller}::$f"} = \&{"Test::Nginx::Socket::$f"};
    }
    Test::More::plan(@plan) if @plan;
}

# ---------------------------------------------------- exported functions --

sub repeat_each { $RepeatEach = $_[0] if @_; return $RepeatEach }
sub no_shuffle  { $NoShuffle = 1 }
sub master_on   { $MasterOn = 1 }
sub master_off  { $MasterOn = 0 }
sub workers     { $Workers = $_[0] if @_; return $Workers }
sub worker_connections { $WorkerConnections = $_[0] if @_; return $WorkerConnections }
sub log_level   { $LogLevel = $_[0] if @_; return $LogLevel }
sub no_long_string { $NoLongString = 1 }
sub no_diff     { $NoDiff = 1 }
sub no_root_location { $NoRootLocation = 1 }
sub env_to_nginx { push @EnvToNginx, @_ }
sub add_block_preprocessor { push @BlockPreprocessors, $_[0] }
sub add_cleanup_handler { push @CleanupHandlers, $_[0] }
sub server_name { $ServerName = $_[0] if @_; return $ServerName }
sub use_hup     { $UseHup = 1 }
sub check_accum_error_log { $CheckAccumErrLog = 1 }
sub timeout     { $Timeout = _parse_time($_[0]) if @_; return $Timeout }
sub html_dir    { $HtmlDir }
sub server_root { $ServRoot }
sub server_port { $ServerPort = $_[0] if @_; return $ServerPort }
sub server_port_for_client {
    $ServerPortForClient = $_[0] if @_;
    return $ServerPortForClient;
}
sub server_addr { $ServerAddr = $_[0] if @_; return $ServerAddr }
sub no_nginx_manager { $NoNginxManager = 1 }

sub bail_out {
    my $msg = shift;
    _cleanup();
    Test::More::BAIL_OUT($msg);
}

# Compares strings; a Regexp "expected" means like().  Adds a hint about the
# first difference for long strings (instead of Test::LongString).
sub is_str {
    my ($got, $expected, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $name);
    }
    my $ok = Test::More::is($got, $expected, $name);
    if (!$ok && !$NoLongString && defined $got && defined $expected
        && (length($got) > 60 || length($expected) > 60)) {
        my $i = 0;
        my $max = length($got) < length($expected) ? length($got) : length($expected);
        $i++ while $i < $max && substr($got, $i, 1) eq substr($expected, $i, 1);
        Test::More::diag(sprintf("    strings differ at offset %d (got length %d, expected length %d):\n"
            . "      got:      %s\n      expected: %s", $i, length $got, length $expected,
            _show(substr($got, $i, 40)), _show(substr($expected, $i, 40))));
    }
    return $ok;
}

sub _show {
    my $s = shift;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return "\"$s\"";
}

# ---------------------------------------------------------------- blocks --

my $AllBlocks;

sub _load_blocks {
    return $AllBlocks if $AllBlocks;
    my $text;
    my $file = $0;
    if (open my $fh, '<', $0) {
        local $/;
        my $src = <$fh>;
        close $fh;
        if (defined $src && $src =~ /^__(?:DATA|END)__[ \t]*\r?\n(.*)\z/ms) {
            $text = $1;
        }
    }
    if (!defined $text) {
        no strict 'refs';
        my $fh = \*{"main::DATA"};
        if (defined fileno $fh) {
            local $/;
            $text = <$fh>;
        }
    }
    $text = '' unless defined $text;
    my @all = Test::Nginx::Harness::Block::parse_spec($text, $file);

    my @only = grep { $_->{raw}{ONLY} } @all;
    if (@only) {
        Test::More::diag("WARNING: found a --- ONLY section in $file (TEST "
                         . $only[0]->seq_num . "); running that block only");
        @all = ($only[0]);
    } else {
        my @keep;
        for my $b (@all) {
            next if $b->{raw}{SKIP};
            push @keep, $b;
            last if $b->{raw}{LAST};
        }
        @all = @keep;
    }
    $AllBlocks = \@all;
    return $AllBlocks;
}

sub blocks {
    my $b = _load_blocks();
    return wantarray ? @$b : scalar @$b;
}

# ----------------------------------------------------------------- utils --

sub _parse_time {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^(\d+(?:\.\d+)?)ms$/;
    return $1 if $t =~ /^(\d+(?:\.\d+)?)s?$/;
    return undef;
}

my %RandPorts;

sub _free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, Proto => 'tcp', ReuseAddr => 1)
        or die "cannot find a free port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# Replaces $TEST_NGINX_FOO by $ENV{TEST_NGINX_FOO}.  In strict mode an
# undefined variable is an error (pushed to @$missing).
sub _expand_env {
    my ($text, $missing) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $n = $1;
        if (!defined $ENV{$n} && $n =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $ENV{$n} = $RandPorts{$n} //= _free_port();
        }
        if (defined $ENV{$n}) { $ENV{$n} }
        else { push @$missing, $n if $missing; "\$$n" }
    }ge;
    return $text;
}

# Expands $TEST_NGINX_* or dies naming the undefined ones (the genuine
# library bails out on those).
sub _expand_strict {
    my $text = shift;
    return $text unless defined $text && !ref $text;
    my @missing;
    $text = _expand_env($text, \@missing);
    die "No environment " . join(', ', map { "\$$_" } @missing) . " defined.\n"
        if @missing;
    return $text;
}

my $NginxVersion;

sub _nginx_binary {
    my $b = $ENV{TEST_NGINX_BINARY};
    return $b if defined $b && length $b;
    for my $d (split /:/, $ENV{PATH} // '') {
        return "$d/nginx" if length $d && -x "$d/nginx" && !-d "$d/nginx";
    }
    return '/usr/sbin/nginx';
}

sub _nginx_version {
    return $NginxVersion if defined $NginxVersion;
    my $bin = _nginx_binary();
    my $out = `'$bin' -v 2>&1`;
    $NginxVersion = ($out && $out =~ m{nginx/(\d+(?:\.\d+)*)}) ? $1 : '0.0.0';
    return $NginxVersion;
}

sub _ver_cmp {
    my ($a, $b) = @_;
    my @a = split /\./, $a;
    my @b = split /\./, $b;
    while (@a || @b) {
        my $x = shift(@a) // 0;
        my $y = shift(@b) // 0;
        my ($xn) = $x =~ /^(\d+)/;
        my ($yn) = $y =~ /^(\d+)/;
        my $c = ($xn // 0) <=> ($yn // 0) || $x cmp $y;
        return $c if $c;
    }
    return 0;
}

sub _ver_test {
    my ($op, $v) = @_;
    my $c = _ver_cmp(_nginx_version(), $v);
    return $op eq '>' ? $c > 0 : $op eq '>=' ? $c >= 0 : $op eq '<' ? $c < 0
         : $op eq '<=' ? $c <= 0 : $op eq '=' || $op eq '==' ? $c == 0
         : $op eq '!=' ? $c != 0 : die "bad version operator '$op'\n";
}

sub _read_file_from {
    my ($file, $off) = @_;
    open my $fh, '<', $file or return ('', 0);
    binmode $fh;
    my $size = -s $fh || 0;
    $off = 0 if !defined $off || $off > $size;
    seek $fh, $off, 0;
    local $/;
    my $d = <$fh>;
    close $fh;
    $d = '' unless defined $d;
    return ($d, $off + length $d);
}

sub _log_lines {
    my $text = shift;
    return [ split /^/m, $text ];
}

sub _log_size { my $s = -s $ErrLogFile; return $s || 0 }

# Wait (briefly) until nginx stops appending to error.log.
sub _settle_log {
    my $last = _log_size();
    my $stable = 0;
    for (1 .. 25) {
        Time::HiRes::sleep(0.02);
        my $s = _log_size();
        if ($s == $last) { last if ++$stable >= 2 } else { $stable = 0; $last = $s }
    }
}

sub _tail {
    my ($file, $n) = @_;
    my ($d) = _read_file_from($file, 0);
    my @l = split /\n/, $d;
    @l = @l[-$n .. -1] if @l > $n;
    return join "\n", @l;
}

sub _patterns {
    my ($v, $split) = @_;
    return () unless defined $v;
    return ($v) if ref $v eq 'Regexp';
    return grep { defined } @$v if ref $v eq 'ARRAY';
    my $s = $v;
    chomp $s;
    return $split ? (grep { length } split /\n+/, $s) : ($s);
}

sub _line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? scalar($line =~ $pat) : index($line, $pat) >= 0;
}

sub _pick {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

# --------------------------------------------------------------- config --

sub _env_line {
    my $e = shift;
    return "env $e;\n" unless $e =~ /[\s;'"{}]/;
    (my $q = $e) =~ s/(['\\])/\\$1/g;
    return "env '$q';\n";
}

sub _build_config {
    my ($block, $opts) = @_;
    my @missing;
    my %c;
    for my $s (qw(main_config post_main_config http_config config)) {
        my $v = $block->get_value($s);
        $v = '' unless defined $v;
        die "--- $s must be a string\n" if ref $v;
        $c{$s} = _expand_env($v, \@missing);
    }
    die "No environment " . join(', ', map { "\$$_" } @missing) . " defined.\n" if @missing;

    my $level = $block->get_value('log_level');
    $level = $LogLevel unless defined $level && length $level;
    $level =~ s/^\s+|\s+$//g;
    my $server_name = $opts->{server_name};

    my $conf = "# generated by the bundled Test::Nginx::Socket harness (t/lib)\n";
    for my $m (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '') {
        $conf .= "load_module $m;\n";
    }
    $conf .= "worker_processes  $Workers;\n";
    $conf .= "daemon $opts->{daemon};\n";
    $conf .= "master_process $opts->{master};\n";
    if ($opts->{master} eq 'on') {
        my $user = $ENV{TEST_NGINX_WORKER_USER};
        $user = 'root' if !defined $user && $> == 0;
        $conf .= "user $user;\n" if defined $user && length $user;
    }
    $conf .= "error_log $ErrLogFile $level;\n";
    $conf .= "pid       $PidFile;\n";
    for my $e (qw(MOCKEAGAIN_VERBOSE MOCKEAGAIN MOCKEAGAIN_WRITE_TIMEOUT_PATTERN
                  LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS), @EnvToNginx) {
        $conf .= _env_line($e);
    }
    $conf .= "\n$c{main_config}\n";
    $conf .= "http {\n";
    $conf .= "    access_log $AccLogFile;\n";
    $conf .= "    default_type text/plain;\n";
    $conf .= "    keepalive_timeout  68;\n";
    if ($ENV{TEST_NGINX_POSTPONE_OUTPUT}) {
        $conf .= "    postpone_output $ENV{TEST_NGINX_POSTPONE_OUTPUT};\n";
    }
    $conf .= "\n$c{http_config}\n";
    $conf .= "    server {\n";
    $conf .= "        listen          $ServerPort" . ($ENV{TEST_NGINX_REUSE_PORT} ? " reuseport" : '') . ";\n";
    $conf .= "        server_name     '$server_name';\n\n";
    $conf .= "        client_max_body_size 30M;\n";
    $conf .= "        # Begin test case config...\n";
    $conf .= "$c{config}\n";
    $conf .= "        # End test case config.\n\n";
    if (!$NoRootLocation) {
        $conf .= "        location / {\n";
        $conf .= "            root $HtmlDir;\n";
        $conf .= "            index index.html index.htm;\n";
        $conf .= "        }\n";
    }
    $conf .= "    }\n}\n\n";
    $conf .= "$c{post_main_config}\n";
    $conf .= "events {\n";
    $conf .= "    accept_mutex off;\n" if $opts->{master} eq 'on';
    $conf .= "    worker_connections  $WorkerConnections;\n";
    $conf .= "    use $ENV{TEST_NGINX_EVENT_TYPE};\n" if $ENV{TEST_NGINX_EVENT_TYPE};
    $conf .= "}\n";
    return $conf;
}

sub _write_user_files {
    my ($block) = @_;
    my $uf = $block->get_value('user_files');
    return unless defined $uf;
    my @files;
    if (ref $uf eq 'ARRAY') {
        @files = map { [ @$_ ] } @$uf;
    } elsif (!ref $uf) {
        my $cur;
        for my $line (split /^/m, $uf) {
            if ($line =~ /^>>>\s+(\S+)(?:\s+(\S+))?\s*$/) {
                $cur = [ $1, '', $2 ];
                push @files, $cur;
            } elsif ($cur) {
                $cur->[1] .= $line;
            } elsif ($line =~ /\S/) {
                die "--- user_files: content before the first '>>> NAME' line\n";
            }
        }
    } else {
        die "--- user_files must be a string or an array reference\n";
    }
    for my $f (@files) {
        my ($name, $body, $mtime) = @$f;
        die "--- user_files: absolute path '$name' not allowed\n" if $name =~ m{^/};
        $body = _expand_strict($body) if defined $body && !ref $body;
        my $path = "$HtmlDir/$name";
        (my $dir = $path) =~ s{/[^/]*\z}{};
        File::Path::make_path($dir) unless -d $dir;
        open my $fh, '>', $path or die "cannot write $path: $!\n";
        binmode $fh;
        print $fh (defined $body ? $body : '');
        close $fh;
        if (defined $mtime) {
            my $t = $mtime;
            if ($mtime =~ /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(?:\.(\d\d))?$/) {
                $t = POSIX::mktime($6 // 0, $5, $4, $3, $2 - 1, $1 - 1900);
            }
            utime $t, $t, $path;
        }
    }
}

sub _setup_servroot {
    File::Path::remove_tree($ServRoot) if -d $ServRoot;
    File::Path::make_path($ConfDir, $LogDir, $HtmlDir);
    chmod 0755, $ServRoot, $ConfDir, $LogDir, $HtmlDir;
    _write_index_html();
}

sub _clear_html {
    File::Path::remove_tree($HtmlDir) if -d $HtmlDir;
    File::Path::make_path($HtmlDir);
    _write_index_html();
}

# The genuine library puts an html/index.html in every servroot, so that
# "GET /" is a 200 there; a block must not pass here on a 403 instead.
sub _write_index_html {
    _write_file("$HtmlDir/index.html", '<html><head><title>It works!'
        . '</title></head><body>It works!</body></html>');
}

# ------------------------------------------------------------ the runner --

our $Server;
our $LastBlock;
my $HupRunning = 0;
my $CleanedUp = 0;
my $ValgrindOpts;

sub _server {
    $Server ||= Test::Nginx::Harness::Server->new(
        servroot => $ServRoot, binary => _nginx_binary());
    return $Server;
}

sub _valgrind_cmd {
    return undef unless $UseValgrind;
    return $ValgrindOpts if $ValgrindOpts;
    my @o = ('valgrind');
    if ($UseValgrind =~ /^\d+$/) {
        push @o, '--tool=memcheck', '--leak-check=full';
    } else {
        push @o, split ' ', $UseValgrind;
    }
    push @o, '--errors-for-leak-kinds=definite', '--error-exitcode=42',
             '--gen-suppressions=all', '--num-callers=30';
    my @supp;
    if (!$ENV{TEST_NGINX_VALGRIND_NO_BUILTIN_SUPPRESS}) {
        (my $dir = $INC{'Test/Nginx/Harness/Block.pm'} // '') =~ s{/[^/]*\z}{};
        my $builtin = File::Spec->rel2abs("$dir/nginx-core.supp");
        push @supp, $builtin if -f $builtin;
    }
    push @supp, File::Spec->rel2abs('valgrind.suppress') if -f 'valgrind.suppress';
    push @supp, map { File::Spec->rel2abs($_) } split ' ', ($ENV{TEST_NGINX_VALGRIND_SUPPRESS} // '');
    push @o, "--suppressions=$_" for @supp;
    $ValgrindOpts = \@o;
    return $ValgrindOpts;
}

sub _mode {
    my $vg = $UseValgrind ? 1 : 0;
    my $hup = ($UseHup && !$vg) ? 1 : 0;
    return {
        valgrind => $vg,
        hup      => $hup,
        daemon   => $vg ? 'off' : 'on',
        master   => $vg ? 'off' : (($hup || $MasterOn) ? 'on' : 'off'),
    };
}

sub run_test { _run_block(@_) }

sub run_tests {
    my @blocks = blocks();
    if (!$NoShuffle) {
        @blocks = List::Util::shuffle(@blocks);
    }
    local $SIG{PIPE} = 'IGNORE';
    $LastBlock = $blocks[-1];
    if ($UseHup && $UseValgrind) {
        Test::More::diag("WARNING: TEST_NGINX_USE_VALGRIND disables TEST_NGINX_USE_HUP");
    }
    if (!$NoNginxManager) {
        _acquire_locks();
        _server()->kill_leftover;
    }
    for my $block (@blocks) {
        _run_block($block);
    }
    if (!$NoClean) {
        _stop_nginx_final();
    }
    _run_cleanup_handlers();
}

# Two test runs sharing a servroot or a port would kill each other's nginx:
# serialise them with flock()ed files in the temp dir (released at exit).
my @Locks;

sub _acquire_locks {
    return if $ENV{TEST_NGINX_NO_LOCK};
    require Fcntl;
    my $dir = File::Spec->tmpdir . "/test-nginx-locks";
    mkdir $dir, 01777 unless -d $dir;
    for my $key ("servroot $ServRoot", "port $ServerPort") {
        (my $safe = $key) =~ s/[^A-Za-z0-9]+/_/g;
        $safe = substr($safe, -150) if length $safe > 150;
        my $f = "$dir/$safe.lock";
        open my $fh, '>>', $f or next;
        if (!flock($fh, Fcntl::LOCK_EX() | Fcntl::LOCK_NB())) {
            print STDERR "# waiting for another test run using $key ($f) ...\n";
            flock($fh, Fcntl::LOCK_EX());
        }
        push @Locks, $fh;
    }
}

sub _stop_nginx_final {
    return if $NoNginxManager || !$Server;
    $Server->stop(grace => $UseValgrind ? 60 : 5) if $Server->alive;
    $HupRunning = 0;
}

sub _run_cleanup_handlers {
    while (my $h = shift @CleanupHandlers) {
        eval { $h->(); 1 } or warn "cleanup handler failed: $@";
    }
}

sub _cleanup {
    return if $CleanedUp++;
    _stop_nginx_final() unless $NoClean;
    _run_cleanup_handlers();
}

END {
    my $status = $?;
    _cleanup() if $Server || @CleanupHandlers;
    $? = $status;
}

for my $sig (qw(INT TERM)) {
    $SIG{$sig} = sub { _cleanup(); $SIG{$sig} = 'DEFAULT'; kill $sig, $$; };
}

sub _block_fail {
    my ($name, $msg, @diag) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::fail("$name - $msg");
    Test::More::diag($_) for grep { defined && length } @diag;
}

sub _run_block {
    my ($block) = @_;
    my $name = $block->name;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    # 1. filters (eval, chomp, ...), then the user's preprocessors
    eval { $block->apply_filters; 1 } or do {
        my $e = $@; chomp $e;
        return _block_fail($name, "bad test block: $e");
    };
    if (defined(my $re = $block->get_value('request_eval'))) {
        my ($err, @r) = Test::Nginx::Harness::Block::eval_code($re, $block);
        return _block_fail($name, "request_eval failed: $err") if $err;
        $block->set_value('request', @r);
    }
    if (defined(my $re = $block->get_value('response_body_eval'))) {
        my ($err, @r) = Test::Nginx::Harness::Block::eval_code($re, $block);
        return _block_fail($name, "response_body_eval failed: $err") if $err;
        $block->set_value('response_body', @r);
    }
    {
        local $block->{tracking} = 1;
        for my $p (@BlockPreprocessors) {
            eval { $p->($block); 1 } or do {
                my $e = $@; chomp $e;
                return _block_fail($name, "block preprocessor died: $e");
            };
        }
    }

    # 2. refuse sections we do not implement (instead of ignoring them),
    # and blocks the genuine library would run differently
    my @unsupported = grep { !$SUPPORTED_SECTIONS{$_} && !$block->{accessed}{$_} }
                      $block->section_names;
    if (@unsupported) {
        return _block_fail($name, "unsupported section: " . join(', ', @unsupported),
            "The bundled harness (t/lib/Test/Nginx/Socket.pm) does not implement "
            . "--- " . join(', --- ', @unsupported) . "; see docs/testing.md");
    }
    my $mode = _mode();
    my $server_name = $block->get_value('server_name');
    $server_name = $ServerName unless defined $server_name && length $server_name;
    $server_name =~ s/^\s+|\s+$//g;
    my $n_resp;
    if (defined(my $e = _shape_error($block, $server_name, \$n_resp))) {
        return _block_fail($name, $e);
    }

    # 3. skip conditions (the genuine library's formats only)
    my ($skip_n, $skip_reason);
    my @skips = grep { defined $block->get_value($_) } qw(skip_nginx skip_nginx2 skip_eval);
    if (@skips > 1) {
        return _block_fail($name, "--- " . join(' and --- ', @skips) . " together: "
            . "the genuine library would not combine them as written; use one");
    }
    for my $s (@skips) {
        my $v = $block->get_value($s);
        $v =~ s/^\s+|\s+$//g;
        my $ver = qr/\d+\.\d+\.\d+/;
        my $hit;
        if ($s eq 'skip_eval') {
            my ($n, $code) = $v =~ /^(\d+)\s*:\s*(.*)$/s
                or return _block_fail($name, "bad --- skip_eval value '$v' (expected 'N: perl code')");
            my ($err, @r) = Test::Nginx::Harness::Block::eval_code($code, $block);
            return _block_fail($name, "--- skip_eval code failed: $err") if $err;
            ($skip_n, $skip_reason) = ($n, "skip_eval: $code") if $r[-1];
        } elsif ($s eq 'skip_nginx') {
            my ($n, $op, $v1, $why) = $v =~ /^(\d+)\s*:\s*([<>]=?)\s*($ver)(?:\s*:\s*(.*))?$/s
                or return _block_fail($name, "bad --- skip_nginx value '$v' "
                    . "(expected 'N: <|<=|>|>= X.Y.Z[: reason]')");
            ($skip_n, $skip_reason) = ($n, $why || "nginx " . _nginx_version() . " $op $v1")
                if _ver_test($op, $v1);
        } else {
            my ($n, $op1, $v1, $conj, $op2, $v2, $why) = $v =~
                /^(\d+)\s*:\s*([<>]=?)\s*($ver)\s*(and|or)\s*([<>]=?)\s*($ver)(?:\s*:\s*(.*))?$/s
                or return _block_fail($name, "bad --- skip_nginx2 value '$v' "
                    . "(expected 'N: OP X.Y.Z and|or OP X.Y.Z[: reason]')");
            my $h = $conj eq 'and' ? (_ver_test($op1, $v1) && _ver_test($op2, $v2))
                                   : (_ver_test($op1, $v1) || _ver_test($op2, $v2));
            ($skip_n, $skip_reason) = ($n, $why || "nginx " . _nginx_version()
                                               . " $op1 $v1 $conj $op2 $v2") if $h;
        }
    }
    if (defined $skip_n) {
        for (1 .. $RepeatEach) {
            SKIP: { Test::More::skip("$name - $skip_reason", $skip_n) }
        }
        return;
    }

    # 4. config + servroot + nginx
    my $conf = eval { _build_config($block, { %$mode, server_name => $server_name }) };
    if (!defined $conf) {
        my $e = $@; chomp $e;
        return _block_fail($name, "cannot build nginx.conf: $e");
    }

    my $server = _server();
    my $start_err;
    my $must_die = $block->get_value('must_die');
    my $block_log_start = 0;

    if (!$NoNginxManager) {
        if ($mode->{hup} && $HupRunning && $server->alive && !defined $must_die) {
            _clear_html();
            eval { _write_user_files($block); 1 } or return _block_fail($name, "user_files: $@");
            _write_file($ConfFile, $conf);
            # as in the genuine library (which reopens the log before the
            # HUP), the block's log starts before the reload: the new
            # workers' start and the old ones' exit are part of it
            $block_log_start = _log_size();
            $start_err = $server->reload(port => $ServerPortForClient);
            if ($start_err && defined $block->get_value('reload_fails')) {
                $start_err = undef;
            }
        } else {
            $server->stop(grace => 5) if $server->alive;
            $HupRunning = 0;
            _setup_servroot();
            eval { _write_user_files($block); 1 } or return _block_fail($name, "user_files: $@");
            _write_file($ConfFile, $conf);
            $start_err = _start_nginx($server, $mode, $must_die);
            $HupRunning = ($mode->{hup} && !$start_err) ? 1 : 0;
        }
    }

    # the error log is read in windows: each check sees what was written
    # since the previous one (from the block's start for the first)
    my $log_off = $block_log_start;
    my $alert_off = $block_log_start;
    my $next_window = sub {
        my ($rep) = @_;
        _settle_log();
        my ($log, $end) = _read_file_from($ErrLogFile,
                                          $CheckAccumErrLog ? $block_log_start : $log_off);
        my $lines = _log_lines($log);
        $log_off = $end;
        return $lines;
    };

    if (defined $must_die) {
        # the genuine library starts nginx once per repeat, with one
        # assertion on how it died, then the log checks
        for my $rep (0 .. $RepeatEach - 1) {
            if ($rep > 0) {
                $start_err = _start_nginx($server, $mode, $must_die);
            }
            if (!$start_err) {
                Test::More::fail("$name - nginx should have failed to start (--- must_die)");
                $server->stop(grace => 5);
            } elsif ($must_die =~ /^\s*(\d+)\s*$/) {
                my $want = $1;
                my ($got) = $start_err =~ /status (\d+)/;
                Test::More::is($got // '', $want, "$name - die with the expected exit code");
            } else {
                Test::More::pass("$name - die as expected");
            }
            my $lines = $next_window->($rep);
            _check_error_logs($block, $name, $lines, $rep);
            $alert_off = $log_off;
        }
        return;
    }

    if ($start_err) {
        _settle_log();
        Test::More::diag("$name - nginx failed to start: $start_err\n"
            . "--- last lines of $ErrLogFile:\n" . _tail($ErrLogFile, 20)
            . (-s $server->stderr_log ? "\n--- nginx stderr:\n" . _tail($server->stderr_log, 10) : ''));
    }

    # 5. init code
    if (defined(my $init = $block->get_value('init'))) {
        my ($err) = Test::Nginx::Harness::Block::eval_code($init, $block);
        if ($err) {
            chomp $err;
            _block_fail($name, "--- init failed: $err");
        }
    }

    my $timeout = _parse_time($block->get_value('timeout'));
    $timeout = $Timeout unless defined $timeout;
    my $middle_delay = _parse_time($block->get_value('raw_request_middle_delay'));
    my $shutdown = $block->get_value('shutdown');
    if (defined $shutdown) { $shutdown =~ s/\s+//g; $shutdown = 1 if $shutdown eq '' }
    my $wait = _parse_time($block->get_value('wait'));
    my $ignore = defined $block->get_value('ignore_response');

    # 6. the requests (repeat_each times).  As in the genuine library, each
    # response is checked as soon as it is read, and then the error log:
    # --- error_log, --- no_error_log and --- grep_error_log apply to EVERY
    # request of a block, each on the log written since the previous check
    # (a request array's first request sees the block's start-up too).
    for my $rep (0 .. $RepeatEach - 1) {
        if ($rep > 0 && !$NoNginxManager) {
            # the genuine library writes the user files again per repeat
            eval { _write_user_files($block); 1 } or _block_fail($name, "user_files: $@");
        }
        my @conns = eval {
            Test::Nginx::Harness::Client::requests_from_block(
                block => $block, server_name => $server_name,
                expand => \&_expand_strict);
        };
        if (!@conns) {
            my $e = $@ || "no request"; chomp $e;
            _block_fail($name, "bad request spec: $e");
            last;
        }

        my $i = 0;
        for my $c (@conns) {
            my $res;
            if ($start_err) {
                $res = { raw => '', timed_out => 0, error => 'nginx not running' };
            } else {
                $res = Test::Nginx::Harness::Client::send_request(
                    packets => $c->{packets}, addr => $ServerAddr,
                    port => $ServerPortForClient, timeout => $timeout,
                    middle_delay => $middle_delay, shutdown => $shutdown);
            }
            if ($res->{timed_out} && !defined $block->get_value('abort')) {
                Test::More::fail("ERROR: client socket timed out - $name");
            }
            if ($res->{error} && !$start_err) {
                Test::More::diag("$name - $res->{error}");
                if (!$server->alive && !$NoNginxManager) {
                    Test::More::diag("$name - nginx is not running any more; last lines of error.log:\n"
                        . _tail($ErrLogFile, 20));
                }
            }
            for my $r (Test::Nginx::Harness::Client::parse_responses($res->{raw}, $c->{methods})) {
                if (!$ignore) {
                    if ($r->{bad_framing}) {
                        Test::More::fail("$name - invalid response received: $r->{bad_framing}");
                    }
                    if (defined $r->{extra}) {
                        (my $x = $r->{extra}) =~ s/([^\x20-\x7e])/sprintf('\\x{%02x}', ord $1)/ge;
                        Test::More::diag("WARNING: $name - unexpected extra bytes after "
                                         . "the response: \"$x\"");
                    }
                    _check_response($block, $name, $r, $i, $rep, $n_resp > 1);
                }
                Time::HiRes::sleep($wait) if defined $wait && $wait > 0;
                my $lines = $next_window->($rep);
                _check_error_logs($block, $name, $lines, $rep);
                # alerts: only lines not scanned before
                my ($new) = _read_file_from($ErrLogFile, $alert_off);
                $alert_off = $log_off if $log_off > $alert_off;
                _scan_alerts($block, $name, _log_lines($new), '');
                $i++;
            }
        }
    }

    # 7. stop nginx (not in HUP mode) and the shutdown checks
    return if $NoNginxManager;
    my $crashed = !$start_err && !$server->alive;
    if ($crashed) {
        _block_fail($name, "nginx died during the test",
            "last lines of $ErrLogFile:\n" . _tail($ErrLogFile, 25));
    }
    my $sd_pats = [ _patterns($block->get_value('shutdown_error_log'), 1) ];
    my $nsd_pats = [ _patterns($block->get_value('no_shutdown_error_log'), 1) ];

    if ($mode->{hup} && !$crashed) {
        for my $p (@$sd_pats, @$nsd_pats) {
            SKIP: { Test::More::skip("$name - shutdown_error_log checks are skipped in HUP mode", 1) }
        }
        return;
    }
    if ($NoClean && _is_last_block($block)) {
        for my $p (@$sd_pats, @$nsd_pats) {
            SKIP: { Test::More::skip("$name - nginx left running (TEST_NGINX_NO_CLEAN)", 1) }
        }
        return;
    }
    my $info = $server->stop(grace => $mode->{valgrind} ? 60 : 5);
    $HupRunning = 0;
    if ($info->{killed}) {
        Test::More::diag("WARNING: $name - nginx did not exit on SIGQUIT; it was killed");
    }
    # the shutdown log: everything after the last request's window
    my ($sdlog) = _read_file_from($ErrLogFile, $log_off);
    my $sdlines = _log_lines($sdlog);
    _check_pattern_list($name, $sdlines, $sd_pats, 1, "shutdown error log", '');
    _check_pattern_list($name, $sdlines, $nsd_pats, 0, "shutdown error log", '');
    my ($sdnew) = _read_file_from($ErrLogFile, $alert_off);
    _scan_alerts($block, $name, _log_lines($sdnew), ' (during shutdown)');

    if ($mode->{valgrind} && !$start_err) {
        _check_valgrind($name, $server, $info);
    }
}

sub _start_nginx {
    my ($server, $mode, $must_die) = @_;
    my $vg = $mode->{valgrind} && !defined $must_die ? _valgrind_cmd() : undef;
    if ($vg) {
        $vg = [ @$vg, "--log-file=" . $server->vg_log ];
    }
    return $server->start(
        port => $ServerPortForClient, valgrind => $vg,
        startup_timeout => $vg ? 60 : ($ENV{TEST_NGINX_STARTUP_TIMEOUT} || 10),
        # -e: startup errors go to error.log (as with openresty builds)
        error_log => (_ver_cmp(_nginx_version(), '1.19.5') >= 0 ? $ErrLogFile : undef));
}

# Sections whose value is checked against each response.
my @RESPONSE_SECTIONS = qw(
    error_code error_code_like raw_response_headers_like
    raw_response_headers_unlike response_headers response_headers_like
    response_body response_body_like response_body_unlike
);

# Pairs of sections of which the genuine library checks only the first and
# silently ignores the second: a block must not count on both.
my @IGNORED_PAIRS = (
    [qw(error_code_like error_code)],
    [qw(response_body response_body_like)],
    [qw(response_body response_body_unlike)],
    [qw(response_body_like response_body_unlike)],
    [qw(response_headers response_headers_like)],
);

# Finds what would make the block run differently under the genuine
# library (or not at all); returns a message, or undef.  Sets $$n_resp to
# the number of responses the block expects.
sub _shape_error {
    my ($block, $server_name, $n_resp) = @_;
    if (!defined $block->get_value('config')) {
        return "no --- config section (the genuine library would run this block "
             . "in the previous block's nginx, or bail out if it is the first)";
    }
    my $g = defined $block->get_value('grep_error_log');
    my $go = defined $block->get_value('grep_error_log_out');
    return "--- grep_error_log needs --- grep_error_log_out" if $g && !$go;
    return "--- grep_error_log_out needs --- grep_error_log" if $go && !$g;
    # the genuine library checks how nginx died and returns before it reads
    # the request: a --- must_die block needs none
    if (defined $block->get_value('must_die')) {
        $$n_resp = 0;
        return undef;
    }
    for my $p (@IGNORED_PAIRS) {
        my ($first, $second) = @$p;
        if (defined $block->get_value($first) && defined $block->get_value($second)) {
            return "--- $first and --- $second together: the genuine library "
                 . "checks only --- $first; use one of them";
        }
    }

    my @conns = eval {
        Test::Nginx::Harness::Client::requests_from_block(
            block => $block, server_name => $server_name,
            expand => \&_expand_strict);
    };
    if (!@conns) {
        my $e = $@ || "no request"; chomp $e;
        return "bad request spec: $e";
    }
    my $n = 0;
    $n += @{ $_->{methods} } for @conns;
    $$n_resp = $n;

    if (!defined $block->get_value('ignore_response')) {
        for my $s (@RESPONSE_SECTIONS) {
            my $v = $block->get_value($s);
            next unless defined $v;
            if ($n > 1) {
                return "--- $s needs one value per request (an array of $n): "
                     . "the block sends $n requests" unless ref $v eq 'ARRAY';
            }
            if (ref $v eq 'ARRAY' && @$v != $n) {
                return "--- $s has " . scalar(@$v) . " values for $n request"
                     . ($n == 1 ? '' : 's');
            }
        }
    }

    # undefined $TEST_NGINX_* in the expectations the genuine library expands
    my @texts;
    for my $s (qw(response_body grep_error_log_out)) {
        my $v = $block->get_value($s);
        push @texts, grep { defined && !ref } (ref $v eq 'ARRAY' ? @$v : ($v));
    }
    for my $t (@texts) {
        eval { _expand_strict($t); 1 } or do { my $e = $@; chomp $e; return $e };
    }
    return undef;
}

sub _is_last_block {
    my $b = shift;
    return defined $LastBlock && $LastBlock == $b;
}

sub _write_file {
    my ($f, $content) = @_;
    open my $fh, '>', $f or die "cannot write $f: $!\n";
    print $fh $content;
    close $fh;
}

# ---------------------------------------------------------------- checks --

sub _check_response {
    my ($block, $name, $r, $i, $rep) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $code = defined $r->{code} ? $r->{code} : '';

    # status
    my $ec = _pick($block->get_value('error_code'), $i);
    my $ecl = _pick($block->get_value('error_code_like'), $i);
    if (defined $ec) {
        $ec =~ s/^\s+|\s+$//g;
        Test::More::is($code, $ec, "$name - status code ok");
    } elsif (defined $ecl) {
        my $re = ref $ecl ? $ecl : do { (my $p = $ecl) =~ s/^\s+|\s+$//g; qr/$p/ };
        Test::More::like($code, $re, "$name - status code ok");
    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }
    if ($r->{error} && $r->{error} ne 'no response received') {
        Test::More::diag("$name - response problem: $r->{error}");
    }

    # raw headers
    for my $s ([raw_response_headers_like => 1], [raw_response_headers_unlike => 0]) {
        my $v = _pick($block->get_value($s->[0]), $i);
        next unless defined $v;
        my $re = ref $v ? $v : qr/$v/s;
        if ($s->[1]) { Test::More::like($r->{raw_headers}, $re, "$name - raw resp headers like") }
        else { Test::More::unlike($r->{raw_headers}, $re, "$name - raw resp headers unlike") }
    }

    # headers
    my $rh = _pick($block->get_value('response_headers'), $i);
    if (defined $rh) {
        for my $h (_parse_header_spec($rh)) {
            my ($k, $v) = @$h;
            if (!defined $v) {
                Test::More::unlike($r->{raw_headers}, qr/^\s*\Q$k\E\s*:/mi,
                                   "$name - header $k not present in the raw headers");
                next;
            }
            $v =~ s/\$ServerPort\b/$ServerPort/g;
            $v =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            my $got = Test::Nginx::Harness::Client::header_value($r, $k);
            $got = '' unless defined $got;
            Test::More::is($got, $v, "$name - header $k ok");
        }
    }
    my $rhl = _pick($block->get_value('response_headers_like'), $i);
    if (defined $rhl) {
        for my $h (_parse_header_spec($rhl)) {
            my ($k, $v) = @$h;
            my $got = Test::Nginx::Harness::Client::header_value($r, $k);
            $got = '' unless defined $got;
            $v = '' unless defined $v;
            Test::More::like($got, qr/^$v$/, "$name - header $k like ok");
        }
    }

    # body
    my $body = $r->{body};
    my $suffix = "(repeated req $rep, req $i)";
    my $rb = $block->get_value('response_body');
    if (defined $rb) {
        my $exp = _pick($rb, $i);
        if (defined $exp && !ref $exp) {
            $exp =~ s/\$ServerPort\b/$ServerPort/g;
            $exp =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $exp = _expand_strict($exp);    # checked by _shape_error
        }
        is_str($body, $exp, "$name - response_body - response is expected $suffix");
    }
    for my $s ([response_body_like => 1], [response_body_unlike => 0]) {
        my $v = $block->get_value($s->[0]);
        next unless defined $v;
        my $pat = _pick($v, $i);
        if (!ref $pat) {
            $pat = '' unless defined $pat;
            $pat =~ s/\$ServerPort\b/$ServerPort/g;
            $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        my $re = qr/$pat/s;
        if ($s->[1]) { Test::More::like($body, $re, "$name - response_body_like - response is expected $suffix") }
        else { Test::More::unlike($body, $re, "$name - response_body_unlike - response is expected $suffix") }
    }
}

# "Name: value" lines; "!Name" means "must be absent".  Order kept, later
# duplicates replace earlier ones (the genuine module uses a hash).
sub _parse_header_spec {
    my $spec = shift;
    my (@order, %val);
    if (ref $spec eq 'HASH') {
        return map { [$_, $spec->{$_}] } sort keys %$spec;
    }
    for my $line (split /\n/, $spec) {
        $line =~ s/^\s+|\s+$//g;
        next unless length $line;
        my ($k, $v);
        if ($line =~ s/^!\s*//) {
            ($k, $v) = ($line, undef);
        } else {
            # a line without a colon means "absent" to the genuine library
            ($k, $v) = split /\s*:\s*/, $line, 2;
        }
        push @order, $k unless exists $val{$k};
        $val{$k} = $v;
    }
    return map { [$_, $val{$_}] } @order;
}

sub _check_pattern_list {
    my ($name, $lines, $pats, $want, $what, $suffix) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 2;
    for my $pat (@$pats) {
        my ($hit) = grep { _line_matches($_, $pat) } @$lines;
        if ($want) {
            if (defined $hit) {
                Test::More::pass("$name - pattern \"$pat\" matches a line in $what$suffix");
            } else {
                Test::More::fail("$name - pattern \"$pat\" should match a line in $what$suffix");
            }
        } else {
            if (defined $hit) {
                chomp(my $l = $hit);
                Test::More::fail("$name - pattern \"$pat\" should not match any line in $what "
                                 . "but matches line \"$l\"$suffix");
            } else {
                Test::More::pass("$name - pattern \"$pat\" does not match a line in $what$suffix");
            }
        }
    }
}

sub _check_error_logs {
    my ($block, $name, $lines, $rep) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $suffix = " (req $rep)";
    my $g = $block->get_value('grep_error_log');
    $g = $g->[$rep] if ref $g eq 'ARRAY';    # per repeat, as genuinely
    if (defined $g) {
        my $out = '';
        for my $l (@$lines) {
            my $m;
            if (ref $g) { $m = $& if $l =~ $g }
            else { my $p = index($l, $g); $m = $g if $p >= 0 }
            $out .= "$m\n" if defined $m && $m !~ /\n/;
        }
        my $exp = $block->get_value('grep_error_log_out');
        $exp = $exp->[$rep] if ref $exp eq 'ARRAY';
        $exp = _expand_strict($exp) if defined $exp && !ref $exp;
        is_str($out, $exp, "$name - grep_error_log_out (req $rep)");
    }
    _check_pattern_list($name, $lines, [ _patterns($block->get_value('error_log'), 1) ],
                        1, 'error.log', $suffix);
    _check_pattern_list($name, $lines, [ _patterns($block->get_value('no_error_log'), 1) ],
                        0, 'error.log', $suffix);
    # a failed assert() in nginx fails the block, as genuinely
    for my $l (@$lines) {
        next unless $l =~ /\bAssertion .*?failed\b/;
        chomp(my $c = $l);
        Test::More::fail("$name - $c");
    }
}

sub _scan_alerts {
    my ($block, $name, $lines, $where) = @_;
    my @ok = (_patterns($block->get_value('error_log'), 1),
              _patterns($block->get_value('shutdown_error_log'), 1));
    my @bad;
    for my $l (@$lines) {
        next unless $l =~ /\[(?:alert|crit|emerg)\]/;
        next if grep { _line_matches($l, $_) } @ok;
        chomp(my $c = $l);
        push @bad, $c;
    }
    return unless @bad;
    if ($FailOnAlert) {
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        Test::More::fail("$name - no unexpected [alert]/[crit]/[emerg] in error.log$where");
        Test::More::diag("  $_") for @bad;
    } else {
        print STDERR "WARNING: $name - $_\n" for @bad;
    }
}

sub _check_valgrind {
    my ($name, $server, $info) = @_;
    my ($log) = _read_file_from($server->vg_log, 0);
    my $status = $info->{child_status};
    my $errors = $log =~ /ERROR SUMMARY: (\d+) errors/ ? $1 : undef;
    my ($def) = $log =~ /definitely lost: ([\d,]+) bytes/;
    $def =~ s/,//g if defined $def;
    my $bad = (defined $status && ($status >> 8) == 42)
           || ($errors && $errors > 0) || ($def && $def > 0);
    if ($info->{killed}) {
        Test::More::diag("WARNING: $name - nginx was killed, valgrind leak check incomplete");
    }
    return unless $bad;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @rel = grep { /^==\d+==/ } split /\n/, $log;
    @rel = @rel[0 .. 199] if @rel > 200;
    Test::More::fail("$name - valgrind reported "
        . (defined $errors ? "$errors error(s)" : "errors")
        . (defined $def && $def ? ", $def bytes definitely lost" : '')
        . " (see " . $server->vg_log . ")");
    Test::More::diag(join "\n", @rel);
}

1;
