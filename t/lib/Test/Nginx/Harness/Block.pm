package Test::Nginx::Harness::Block;

# Part of the bundled Test::Nginx::Socket-compatible harness (see
# docs/testing.md).  Parses the Test::Base style data section
# (`=== name` blocks made of `--- section [filters][: value]` parts) and
# provides the block objects handed to run_tests() and to block
# preprocessors.

use strict;
use warnings;
use Carp ();
use MIME::Base64 ();

our $AUTOLOAD;

# ---------------------------------------------------------------- parsing --

# parse_spec($text, $file) -> list of blocks (unfiltered; filters are applied
# lazily by apply_filters() right before a block runs).
sub parse_spec {
    my ($text, $file) = @_;
    $file //= '(data)';

    my @blocks;
    my $cur;
    my $sec;            # current section hash
    my $lineno = 0;
    my $seq = 0;

    my $close_section = sub {
        return unless $sec;
        push @{ $cur->{order} }, $sec->{name}
            unless exists $cur->{raw}{ $sec->{name} };
        if ($sec->{inline_value_given} && $sec->{text} =~ /\S/) {
            Carp::croak("$file line $sec->{line}: extra lines not allowed in "
                . "'$sec->{name}' section (it has an inline ': value')");
        }
        $cur->{raw}{ $sec->{name} } = $sec;
        undef $sec;
    };

    for my $line (split /^/m, $text) {
        $lineno++;
        if ($line =~ /^===(?:[ \t]+(.*?))?[ \t]*\r?\n?\z/) {
            $close_section->();
            my $name = defined $1 ? $1 : '';
            $cur = __PACKAGE__->_new(name => $name, seq_num => ++$seq,
                                     line => $lineno, file => $file);
            push @blocks, $cur;
            next;
        }
        next unless $cur;    # text before the first block is ignored

        if ($line =~ /^---[ \t]+\(?(\w+)\)?(.*?)\r?\n?\z/) {
            my ($name, $rest) = ($1, $2);
            $close_section->();
            my ($filters, $value, $inline) = ($rest, undef, 0);
            if ($rest =~ /^(.*?)[ \t]*:(?:[ \t]+(.*?)|)[ \t]*\z/s) {
                ($filters, $value, $inline) = ($1, defined $2 ? $2 : '', 1);
            }
            $filters =~ s/^\s+|\s+$//g;
            $sec = {
                name    => $name,
                filters => [ grep { length } split /[\s,]+/, $filters ],
                text    => '',
                inline  => $value,
                inline_value_given => $inline,
                line    => $lineno,
            };
            next;
        }

        if ($sec) {
            $sec->{text} .= $line;
        } else {
            $cur->{description_text} .= $line;
        }
    }
    $close_section->();
    return @blocks;
}

sub _new {
    my ($class, %args) = @_;
    return bless {
        %args,
        order    => [],     # section names in file order
        raw      => {},     # name => { filters, text, inline, ... }
        values   => {},     # name => [ values ]
        added    => {},     # names created by set_value()
        accessed => {},     # names read through accessors (tracking)
        filtered => 0,
        description_text => '',
    }, $class;
}

# --------------------------------------------------------------- filters --

my %KNOWN_FILTERS = map { $_ => 1 } qw(
    eval chomp chop trim norm lines join base64_decode base64_encode
    regexp lc uc
);

sub _filter_trim {
    my $t = shift;
    return $t unless defined $t && !ref $t;
    $t =~ s/\A(?:[ \t]*\n)+//;
    $t =~ s/(?<=\n)\s*\z//;
    return $t;
}

sub _filter_norm {
    my $t = shift;
    return $t unless defined $t && !ref $t;
    $t =~ s/\r\n/\n/g;
    $t =~ s/\r/\n/g;
    return $t;
}

# Runs the filters of every section; dies with a readable message on a
# failing eval or an unknown filter.
sub apply_filters {
    my ($self) = @_;
    return if $self->{filtered}++;
    for my $name (@{ $self->{order} }) {
        my $sec = $self->{raw}{$name};
        my @filters = @{ $sec->{filters} };
        my %off = map { (/^-(\w+)$/ ? ($1 => 1) : ()) } @filters;
        @filters = grep { !/^-/ } @filters;

        my @vals = ($sec->{inline_value_given} ? $sec->{inline} : $sec->{text});
        @vals = map { _filter_norm($_) } @vals unless $off{norm};
        @vals = map { _filter_trim($_) } @vals unless $off{trim};

        for my $f (@filters) {
            if (!$KNOWN_FILTERS{$f}) {
                die "unsupported filter '$f' in section '$name'\n";
            }
            if ($f eq 'eval') {
                my $code = join '', map { defined $_ ? $_ : '' } @vals;
                my ($err, @r) = eval_code($code, $self);
                if ($err) {
                    chomp $err;
                    die "eval filter failed in section '$name': $err\n";
                }
                @vals = @r;
            } elsif ($f eq 'chomp') {
                @vals = map { my $v = $_; chomp $v if defined $v && !ref $v; $v } @vals;
            } elsif ($f eq 'chop') {
                @vals = map { my $v = $_; chop $v if defined $v && !ref $v; $v } @vals;
            } elsif ($f eq 'trim') {
                @vals = map { _filter_trim($_) } @vals;
            } elsif ($f eq 'norm') {
                @vals = map { _filter_norm($_) } @vals;
            } elsif ($f eq 'lines') {
                @vals = map { defined $_ ? (split /^/m, $_) : () } @vals;
            } elsif ($f eq 'join') {
                @vals = (join '', map { defined $_ ? $_ : '' } @vals);
            } elsif ($f eq 'base64_decode') {
                @vals = map { MIME::Base64::decode_base64($_) } @vals;
            } elsif ($f eq 'base64_encode') {
                @vals = map { MIME::Base64::encode_base64($_) } @vals;
            } elsif ($f eq 'regexp') {
                @vals = map { my $v = $_; chomp $v; qr/$v/xms } @vals;
            } elsif ($f eq 'lc') {
                @vals = map { lc } @vals;
            } elsif ($f eq 'uc') {
                @vals = map { uc } @vals;
            }
        }
        $self->{values}{$name} = \@vals;
    }
}

our $CurrentBlock;

# Evaluates section text as Perl code the way the genuine library does:
# under "use strict", in a package of its own, not in main; so a block
# that names main's variables or subs without "main::" (or "::") fails
# here as it fails there.  Returns ($error, @values).
sub eval_code {
    my ($__code, $__block) = @_;
    local $CurrentBlock = $__block;
    my @__r;
    my $__err;
    {
        local $@;
        @__r = Test::Nginx::Harness::Eval::run($__code);
        $__err = $@;
    }
    return ($__err, @__r);
}

# -------------------------------------------------------------- accessors --

sub name        { $_[0]{name} }
sub seq_num     { $_[0]{seq_num} }
sub description {
    my $d = $_[0]{description_text};
    return $_[0]{name} unless defined $d && $d =~ /\S/;
    $d =~ s/\s*\z//;
    return $d;
}
sub file        { $_[0]{file} }
sub line        { $_[0]{line} }

# Names of all sections the block has (from the file or set_value()).
sub section_names {
    my $self = shift;
    my %seen;
    return grep { !$seen{$_}++ } @{ $self->{order} }, sort keys %{ $self->{added} };
}

sub has_section { exists $_[0]{values}{$_[1]} || exists $_[0]{raw}{$_[1]} }

sub set_value {
    my ($self, $name, @vals) = @_;
    $self->{values}{$name} = \@vals;
    $self->{added}{$name} = 1 unless exists $self->{raw}{$name};
    return;
}

sub _get {
    my ($self, $name) = @_;
    $self->{accessed}{$name} = 1 if $self->{tracking};
    my $v = $self->{values}{$name};
    if (!$v && !$self->{filtered} && $self->{raw}{$name}) {
        my $sec = $self->{raw}{$name};
        $v = [ _filter_trim(_filter_norm($sec->{inline_value_given}
                                         ? $sec->{inline} : $sec->{text})) ];
    }
    return $v;
}

# Always scalar: the first value of the section, or undef.
sub get_value {
    my ($self, $name) = @_;
    my $v = $self->_get($name) or return undef;
    return $v->[0];
}

sub AUTOLOAD {
    my $self = shift;
    my $name = $AUTOLOAD;
    $name =~ s/.*:://;
    return if $name eq 'DESTROY';
    Carp::croak("Can't call method '$name' on a class") unless ref $self;
    if (@_) {
        $self->set_value($name, @_);
        return;
    }
    my $v = $self->_get($name) or return wantarray ? () : undef;
    return wantarray ? @$v : $v->[0];
}

package Test::Nginx::Harness::Eval;

# the package section code runs in (see eval_code above)
use strict;

sub run {
    no warnings;
    return eval $_[0];
}

1;
